// Live playback of one sentinel through Media Source Extensions: server.init
// opens a SourceBuffer with relay's codec string, server.segment appends.
// Live stays live: the buffer is trimmed to the last few seconds and, when the
// picture drifts behind the newest segment, playback speeds up a little or
// jumps to the live edge. For the single view the player keeps relay's memory
// buffer (a resubscription with startFrom "oldest" fills it in behind the
// playhead) and can play from any point of it, behind live, until told to go
// back to live.
const MS = globalThis.ManagedMediaSource || globalThis.MediaSource;
export const mseSupported = !!MS;

const KEEP_S = 4; // buffer kept behind the playhead
const TRIM_AT_S = 8; // trim once this much lies behind it
const REVIEW_KEEP_S = 20; // kept for the single view: relay's buffer_seconds
const MAX_QUEUE = 10; // appends waiting (a throttled tab): past this, drop until a keyframe
const MAX_CATCH_UP = 40; // the same while relay's catch-up (startFrom "oldest") comes in
const MARGIN_S = 0.2; // played this far behind the start of the newest segment

export class LivePlayer {
  // onState(state, detail): waiting-for-keyframe | playing | error
  constructor(video, onState) {
    this.video = video;
    this.onState = onState;
    this.ms = null;
    this.sb = null;
    this.ops = [];
    this.map = []; // { mediaStart, mediaEnd, wallStart } per appended segment, oldest first
    this.stats = { firstFrameAt: null, segments: 0, jumps: 0, lagAfterAppend: null };
    this.keepS = KEEP_S;
    this.behind = false; // the proctor chose a point behind live
    this.catchFloor = null; // while relay's catch-up comes: older segments are not wanted
    this.catchUntil = 0;
    video.muted = true;
    video.playsInline = true;
    video.disableRemotePlayback = true; // ManagedMediaSource wants no AirPlay fallback
    if (video.requestVideoFrameCallback) {
      const frame = (now, meta) => {
        if (this.stats.firstFrameAt === null) this.stats.firstFrameAt = performance.now();
        this.lastFrame = { mediaTime: meta.mediaTime, at: Date.now() };
        this.vfc = video.requestVideoFrameCallback(frame);
      };
      this.vfc = video.requestVideoFrameCallback(frame);
    }
  }

  // server.init: the same session and codec keep the SourceBuffer (a new init
  // with new parameters is appended in place); anything else starts over.
  init(p) {
    const same = this.sb && this.codec === p.codec && this.sessionId === p.sessionId;
    this.sessionId = p.sessionId;
    this.codec = p.codec;
    this.needKey = true;
    if (same) {
      this.announce = true;
      this.onState('waiting-for-keyframe');
      this.queue({ data: p.data });
      return;
    }
    this.teardown();
    const type = `video/mp4; codecs="${p.codec}"`;
    if (!MS || !MS.isTypeSupported(type)) {
      this.onState('error', { reason: `This browser cannot play ${p.codec}` });
      return;
    }
    const ms = new MS();
    this.ms = ms;
    this.started = false;
    this.ops = [{ data: p.data }];
    ms.addEventListener('sourceopen', () => {
      if (ms !== this.ms) return;
      try {
        this.sb = ms.addSourceBuffer(type);
      } catch (e) {
        this.onState('error', { reason: e.message });
        return;
      }
      // An append may finish after the tile was torn down (a quick close, or the
      // view switched): that SourceBuffer is no longer ours and is left alone.
      const sb = this.sb;
      sb.addEventListener('updateend', () => sb === this.sb && this.updated());
      sb.addEventListener('error', () => sb === this.sb && this.onState('error', { reason: 'SourceBuffer error' }));
      this.pump();
    });
    this.url = URL.createObjectURL(ms);
    this.video.src = this.url;
    this.onState('waiting-for-keyframe');
  }

  segment(p) {
    if (!this.ms) return;
    const newest = this.map.length ? this.map[this.map.length - 1].wallStart : null;
    const old = newest != null && p.startTime <= newest; // part of a catch-up, behind what plays
    // A relay whose "oldest" reaches further back than its buffer_seconds
    // (older servers sent the whole ring): only the last REVIEW_KEEP_S are kept.
    if (old && this.catchFloor != null && p.startTime < this.catchFloor) return;
    if (this.needKey && !p.keyframe) return; // relay starts at join points; this is after a drop
    this.needKey = false;
    if (!old) this.catchFloor = null;
    // A catch-up comes as a burst: its segments have a cap of their own.
    const queued = this.ops.filter((op) => op.segment);
    const catching = old || this.catchFloor != null || performance.now() < this.catchUntil;
    const over = catching ? queued.length >= MAX_CATCH_UP : queued.filter((op) => !op.segment.old).length >= MAX_QUEUE;
    if (over) {
      // The page cannot keep up (a throttled tab): drop what waits, restart at a keyframe.
      this.ops = this.ops.filter((op) => !op.segment);
      this.needKey = !p.keyframe;
      if (this.needKey) return;
    }
    this.queue({ data: p.data, segment: { startTime: p.startTime, duration: (p.duration || 0) / 1000, old } });
  }

  // Before a resubscription with startFrom "oldest": what comes next up to the
  // newest segment held fills the buffer in behind the playhead.
  catchUp() {
    const newest = this.map.length ? this.map[this.map.length - 1].wallStart : null;
    this.catchFloor = newest == null ? null : newest - (this.keepS + 2) * 1000;
    this.catchUntil = performance.now() + 3000; // a fresh player cannot tell catch-up from live
  }

  queue(op) {
    this.ops.push(op);
    this.pump();
  }

  pump() {
    const sb = this.sb;
    if (!sb || !this.ms || sb.updating || !this.ops.length || this.ms.readyState !== 'open') return;
    const op = this.ops[0];
    try {
      if (op.remove) sb.remove(op.remove[0], op.remove[1]);
      else {
        this.endBefore = this.bufferedEnd();
        sb.appendBuffer(op.data);
      }
      this.ops.shift();
      this.current = op;
    } catch (e) {
      if (e.name === 'QuotaExceededError' && this.trim(1)) return;
      this.ops.shift();
      console.warn('live: append failed', e);
    }
  }

  bufferedEnd() {
    const b = this.sb && this.sb.buffered;
    return b && b.length ? b.end(b.length - 1) : 0;
  }

  updated() {
    const op = this.current;
    this.current = null;
    if (op && op.segment) this.appended(op.segment);
    this.pump();
  }

  appended(seg) {
    const v = this.video;
    const end = this.bufferedEnd();
    if (seg.old) {
      this.mapOld(seg);
      if (this.started) this.keepLive(end, this.lastDur || 1);
      this.trim(0);
      return;
    }
    const dur = seg.duration || Math.max(0, end - this.endBefore);
    this.lastDur = dur;
    this.map.push({ mediaStart: end - dur, mediaEnd: end, wallStart: seg.startTime, duration: dur });
    // The media clock against the sentinel's: where a catch-up segment lands.
    this.offsetMs = seg.startTime - (end - dur) * 1000;
    this.pruneMap();
    this.stats.segments++;
    // In a burst (a catch-up), start at its newest segment, not its oldest.
    if (!this.started && this.ops.some((op) => op.segment)) return;
    if (!this.started) {
      this.started = true;
      v.currentTime = end - dur;
      v.play().catch(() => {});
      this.onState('playing');
    } else this.keepLive(end, dur);
    if (this.announce) {
      this.announce = false;
      this.onState('playing');
    }
    this.trim(0);
  }

  // A segment of a catch-up: its place in media time from the clock offset of
  // the segments appended at the live edge (the same sentinel's clock).
  mapOld(seg) {
    if (this.offsetMs == null || this.map.some((m) => m.wallStart === seg.startTime)) return;
    const start = (seg.startTime - this.offsetMs) / 1000;
    const m = { mediaStart: start, mediaEnd: start + seg.duration, wallStart: seg.startTime, duration: seg.duration };
    const at = this.map.findIndex((x) => x.wallStart > seg.startTime);
    this.map.splice(at < 0 ? this.map.length : at, 0, m);
    this.pruneMap();
  }

  // Entries for media no longer buffered go; at most 100 (a 1 s segment each).
  pruneMap() {
    const b = this.sb && this.sb.buffered;
    const from = b && b.length ? b.start(0) : 0;
    while (this.map.length > 1 && (this.map[0].mediaEnd < from - 0.5 || this.map.length > 100)) this.map.shift();
  }

  // Called once per segment, just after it was appended, when the lag is at its
  // largest: about one segment plus the margin is right; more than that plays
  // 10 % faster, a second more jumps. Behind live by choice, it just plays on.
  keepLive(end, dur) {
    const v = this.video;
    if (v.paused && !v.ended) v.play().catch(() => {});
    if (this.behind) {
      v.playbackRate = 1;
      this.skipGap();
      return;
    }
    const lag = end - v.currentTime;
    const want = dur + MARGIN_S;
    this.stats.lagAfterAppend = lag;
    if (lag > want + 1.0) {
      v.currentTime = end - want;
      v.playbackRate = 1;
      this.stats.jumps++;
    } else if (lag > want + 0.1) v.playbackRate = 1.1;
    else v.playbackRate = 1;
    this.skipGap();
  }

  // Skipped segments leave a hole in the buffer: playback would stop at its edge.
  skipGap() {
    const v = this.video;
    if (!this.sb) return;
    const b = this.sb.buffered;
    for (let i = 0; i < b.length; i++) {
      if (v.currentTime < b.start(i) - 0.05) {
        v.currentTime = b.start(i);
        return;
      }
      if (v.currentTime <= b.end(i)) return;
    }
  }

  // Keeps keepS behind the playhead (half of it when the browser's quota is
  // reached); trims once that plus a margin has built up, so not every append removes.
  trim(force) {
    const b = this.sb && this.sb.buffered;
    if (!b || !b.length) return false;
    const keep = force ? this.keepS / 2 : this.keepS;
    const behind = this.video.currentTime - b.start(0);
    if (behind < (force ? keep : this.keepS === KEEP_S ? TRIM_AT_S : this.keepS + 4)) return false;
    const to = this.video.currentTime - keep;
    if (!this.ops.some((op) => op.remove)) this.ops.unshift({ remove: [0, to] });
    this.pump();
    return true;
  }

  // The single view keeps relay's buffer (REVIEW_KEEP_S); the wall a few
  // seconds, live.
  review(on) {
    this.keepS = on ? REVIEW_KEEP_S : KEEP_S;
    if (!on) this.live();
  }

  // Where live playback is: one segment plus the margin behind the newest media.
  liveEdge() {
    const end = this.bufferedEnd();
    return end ? Math.max(0, end - (this.lastDur || 1) - MARGIN_S) : null;
  }

  // Seconds of media held before the live edge: the range the proctor can go back over.
  range() {
    const b = this.sb && this.sb.buffered;
    const edge = this.liveEdge();
    if (!b || !b.length || edge == null) return null;
    return { start: b.start(0), end: Math.max(b.start(0), edge) };
  }

  // Plays from media time t (clamped to what is buffered); at the live edge it is live again.
  seek(t) {
    const r = this.range();
    if (!r) return;
    if (t >= r.end - 0.25) {
      this.live();
      return;
    }
    this.behind = true;
    this.video.currentTime = Math.max(r.start + 0.05, t);
    this.video.playbackRate = 1;
    if (this.video.paused) this.video.play().catch(() => {});
  }

  // Goes back s seconds from what plays now.
  back(s) {
    this.seek(this.video.currentTime - s);
  }

  live() {
    this.behind = false;
    const edge = this.liveEdge();
    if (edge != null && this.video.currentTime < edge - 0.25) this.video.currentTime = edge;
  }

  // Seconds behind the live edge (0 when live).
  behindLive() {
    const edge = this.liveEdge();
    return edge == null ? 0 : Math.max(0, edge - this.video.currentTime);
  }

  // Unix ms (the sentinel's clock) of the picture shown, or of media time t.
  wallAt(t = this.lastFrame ? this.lastFrame.mediaTime : this.video.currentTime) {
    for (let i = this.map.length - 1; i >= 0; i--) {
      const m = this.map[i];
      if (t >= m.mediaStart - 0.001 && t <= m.mediaEnd + 0.001 && m.wallStart) return m.wallStart + (t - m.mediaStart) * 1000;
    }
    return null;
  }

  // Media time of unix ms `at` (the sentinel's clock), when it is held.
  mediaAt(at) {
    for (const m of this.map) {
      if (at >= m.wallStart - 1 && at <= m.wallStart + m.duration * 1000 + 1) return m.mediaStart + (at - m.wallStart) / 1000;
    }
    return null;
  }

  // Durations (s) of the last segments appended, newest last.
  durations() {
    return this.map.map((m) => m.duration);
  }

  // Seconds of media held in the SourceBuffer.
  held() {
    const b = this.sb && this.sb.buffered;
    return b && b.length ? b.end(b.length - 1) - b.start(0) : 0;
  }

  // Seconds between the newest buffered media and the playhead.
  lag() {
    const end = this.bufferedEnd();
    return end ? end - this.video.currentTime : null;
  }

  // Milliseconds from capture (the sentinel's clock, from segment startTime) to display.
  delay() {
    const at = this.wallAt();
    return at == null ? null : Date.now() - at;
  }

  teardown() {
    this.ops = [];
    this.map = [];
    this.sb = null;
    this.current = null;
    this.behind = false;
    this.catchFloor = null;
    this.offsetMs = null;
    this.lastFrame = null;
    if (this.ms && this.ms.readyState === 'open') {
      try {
        this.ms.endOfStream();
      } catch (e) {
        /* already ending */
      }
    }
    this.ms = null;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.video.removeAttribute('src');
    this.video.load();
  }

  destroy() {
    this.teardown();
    if (this.vfc && this.video.cancelVideoFrameCallback) this.video.cancelVideoFrameCallback(this.vfc);
  }
}
