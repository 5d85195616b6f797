// A log pane: follows new lines (scrolls with them until the reader scrolls
// up), filters by text and stream, renders ANSI colours as classes on text
// nodes (never HTML), and downloads what it holds as plain text.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { parseAnsi, stripAnsi } from "../ansi";

export interface LogLine {
  seq: number;
  at: string;
  stream: string;
  line: string;
  stage?: string;
  container?: string;
}

/** Lines kept on the page; older ones are still in the download. */
const SHOWN = 2000;

function Line({ l }: { l: LogLine }) {
  const segments = useMemo(() => parseAnsi(l.line), [l.line]);
  return (
    <div class={`line ${l.stream === "stderr" ? "stderr" : ""}`} data-seq={l.seq}>
      <span class="ts">{l.at.slice(11, 19)}</span>
      {l.stage || l.container ? <span class="src">{l.stage ?? l.container}</span> : null}
      <span class="text">
        {segments.map((s, i) => (s.classes ? <span key={i} class={s.classes}>{s.text}</span> : s.text))}
      </span>
    </div>
  );
}

export function LogView({ lines, name, empty }: { lines: LogLine[]; name: string; empty?: string }) {
  const [filter, setFilter] = useState("");
  const [stream, setStream] = useState("all");
  const [follow, setFollow] = useState(true);
  const pane = useRef<HTMLDivElement>(null);

  const shown = useMemo(() => {
    const needle = filter.toLowerCase();
    const matching = lines.filter(
      (l) => (stream === "all" || l.stream === stream) && (!needle || stripAnsi(l.line).toLowerCase().includes(needle)),
    );
    return { total: matching.length, lines: matching.slice(-SHOWN) };
  }, [lines, filter, stream]);

  // Where following last put the pane: only a scroll up from there (the
  // reader's) stops following; scroll events of our own, or of lines that
  // arrived between a scroll and its event, do not.
  const placed = useRef(0);
  useLayoutEffect(() => {
    const p = pane.current;
    if (follow && p) {
      p.scrollTop = p.scrollHeight;
      placed.current = p.scrollTop;
    }
  }, [shown, follow]);

  const onScroll = () => {
    const p = pane.current;
    if (!p) return;
    const atBottom = p.scrollHeight - p.scrollTop - p.clientHeight < 30;
    if (atBottom && !follow) setFollow(true);
    else if (!atBottom && follow && p.scrollTop < placed.current - 4) setFollow(false);
  };

  const download = () => {
    const text = lines.map((l) => `${l.at} ${l.stream} ${l.stage ?? l.container ?? ""} ${stripAnsi(l.line)}`).join("\n") + "\n";
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${name}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  useEffect(() => setFollow(true), [name]);

  return (
    <div class="logs">
      <div class="log-tools">
        <input type="search" placeholder="filter" aria-label="Filter log lines" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        <select aria-label="Stream" value={stream} onChange={(e) => setStream(e.currentTarget.value)}>
          <option value="all">all streams</option>
          <option value="stdout">stdout</option>
          <option value="stderr">stderr</option>
        </select>
        <label class="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> follow
        </label>
        <button type="button" class="secondary" onClick={download} disabled={!lines.length}>Download</button>
        <span class="muted">
          {shown.total} of {lines.length} lines{shown.total > SHOWN ? ` (last ${SHOWN} shown)` : ""}
        </span>
      </div>
      <div class="log-pane" ref={pane} onScroll={onScroll} data-lines={lines.length}>
        {lines.length === 0 ? <p class="muted">{empty ?? "No log lines yet."}</p> : shown.lines.map((l) => <Line key={l.seq} l={l} />)}
      </div>
    </div>
  );
}

/** Adds lines to a list in order, once each (a fresh stream sends a deployment's log again). */
export function appendLines(list: LogLine[], add: LogLine[]): LogLine[] {
  const last = list.length ? list[list.length - 1].seq : 0;
  const fresh = add.filter((l) => l.seq > last).sort((a, b) => a.seq - b.seq);
  return fresh.length ? list.concat(fresh) : list;
}
