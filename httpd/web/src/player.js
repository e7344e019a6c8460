// Live playback of one sentinel through Media Source Extensions: server.init
// opens a SourceBuffer with relay's codec string, server.segment appends.
// Live stays live: the buffer is trimmed to the last few seconds and, when the
// picture drifts behind the newest segment, playback speeds up a little or
// jumps to the live edge.
const MS = globalThis.ManagedMediaSource || globalThis.MediaSource;
export const mseSupported = !!MS;

const KEEP_S = 4; // buffer kept behind the playhead
const TRIM_AT_S = 8; // trim once this much lies behind it
const MAX_QUEUE = 10; // appends waiting (a throttled tab): past this, drop until a keyframe
const MARGIN_S = 0.2; // played this far behind the start of the newest segment

export class LivePlayer {
  // onState(state, detail): waiting-for-keyframe | playing | error
  constructor(video, onState) {
    this.video = video;
    this.onState = onState;
    this.ms = null;
    this.sb = null;
    this.ops = [];
    this.map = []; // { mediaStart, mediaEnd, wallStart } per appended segment, newest last
    this.stats = { firstFrameAt: null, segments: 0, jumps: 0, lagAfterAppend: null };
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
      this.sb.addEventListener('updateend', () => this.updated());
      this.sb.addEventListener('error', () => this.onState('error', { reason: 'SourceBuffer error' }));
      this.pump();
    });
    this.url = URL.createObjectURL(ms);
    this.video.src = this.url;
    this.onState('waiting-for-keyframe');
  }

  segment(p) {
    if (!this.ms) return;
    if (this.needKey && !p.keyframe) return; // relay starts at join points; this is after a drop
    this.needKey = false;
    if (this.ops.length >= MAX_QUEUE) {
      // The page cannot keep up (a throttled tab): drop what waits, restart at a keyframe.
      this.ops = this.ops.filter((op) => !op.segment);
      this.needKey = !p.keyframe;
      if (this.needKey) return;
    }
    this.queue({ data: p.data, segment: { startTime: p.startTime, duration: (p.duration || 0) / 1000 } });
  }

  queue(op) {
    this.ops.push(op);
    this.pump();
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.ops.length || this.ms.readyState !== 'open') return;
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
    const dur = seg.duration || Math.max(0, end - this.endBefore);
    this.map.push({ mediaStart: end - dur, mediaEnd: end, wallStart: seg.startTime, duration: dur });
    if (this.map.length > 30) this.map.shift();
    this.stats.segments++;
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

  // Called once per segment, just after it was appended, when the lag is at its
  // largest: about one segment plus the margin is right; more than that plays
  // 10 % faster, a second more jumps.
  keepLive(end, dur) {
    const v = this.video;
    if (v.paused && !v.ended) v.play().catch(() => {});
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
    const b = this.sb.buffered;
    for (let i = 0; i < b.length; i++) {
      if (v.currentTime < b.start(i) - 0.05) {
        v.currentTime = b.start(i);
        return;
      }
      if (v.currentTime <= b.end(i)) return;
    }
  }

  trim(force) {
    const b = this.sb && this.sb.buffered;
    if (!b || !b.length) return false;
    const behind = this.video.currentTime - b.start(0);
    if (behind < (force ? KEEP_S / 2 : TRIM_AT_S)) return false;
    const to = this.video.currentTime - (force ? KEEP_S / 2 : KEEP_S);
    if (!this.ops.some((op) => op.remove)) this.ops.unshift({ remove: [0, to] });
    this.pump();
    return true;
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
    const t = this.lastFrame ? this.lastFrame.mediaTime : this.video.currentTime;
    for (let i = this.map.length - 1; i >= 0; i--) {
      const m = this.map[i];
      if (t >= m.mediaStart - 0.001 && t <= m.mediaEnd + 0.001 && m.wallStart) {
        return Date.now() - (m.wallStart + (t - m.mediaStart) * 1000);
      }
    }
    return null;
  }

  teardown() {
    this.ops = [];
    this.map = [];
    this.sb = null;
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
