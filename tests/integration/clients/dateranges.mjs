// The EXT-X-DATERANGE tags of a media playlist as hls.js (httpd/web's copy)
// parses them: reads the playlist's text on stdin and prints one JSON object,
// { hasProgramDateTime, error, dateRanges: [{ id, class, startDate, valid,
// kind, note, by }] }, with X-NOTE and X-BY decoded by decodeURIComponent, as
// a client of docs/httpd.md's "Marks in the playlist" would.
//   node dateranges.mjs HLS_MJS < playlist.m3u8
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const { M3U8Parser } = await import(pathToFileURL(process.argv[2]).href);
const text = readFileSync(0, 'utf8');
const details = M3U8Parser.parseLevelPlaylist(text, 'http://127.0.0.1/playlist.m3u8', 0, 'main', 0, null);
const dateRanges = Object.values(details.dateRanges || {}).map((d) => ({
  id: d.id,
  class: d.class,
  startDate: d.startDate.toISOString(),
  valid: d.isValid,
  kind: d.attr['X-KIND'],
  note: decodeURIComponent(d.attr['X-NOTE']),
  by: decodeURIComponent(d.attr['X-BY']),
}));
process.stdout.write(JSON.stringify({
  hasProgramDateTime: details.hasProgramDateTime,
  error: details.playlistParsingError ? String(details.playlistParsingError) : null,
  fragments: details.fragments.length,
  dateRanges,
}) + '\n');
