// ANSI SGR colours to styled segments. Log text is only ever a text node:
// the segments become <span class=…>, never HTML, so a log line cannot
// inject markup. Codes other than SGR (cursor moves, titles) are dropped.

export interface Segment {
  text: string;
  classes: string;
}

const ESC = /\x1b\[([0-9;]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

interface Style {
  fg: string;
  bg: string;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
}

const plain = (): Style => ({ fg: "", bg: "", bold: false, dim: false, italic: false, underline: false });

function apply(style: Style, params: string) {
  const codes = params === "" ? [0] : params.split(";").map((p) => Number(p) || 0);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, plain());
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 22) style.bold = style.dim = false;
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c >= 30 && c <= 37) style.fg = `f${c - 30}`;
    else if (c >= 90 && c <= 97) style.fg = `f${c - 90 + 8}`;
    else if (c === 39) style.fg = "";
    else if (c >= 40 && c <= 47) style.bg = `b${c - 40}`;
    else if (c >= 100 && c <= 107) style.bg = `b${c - 100 + 8}`;
    else if (c === 49) style.bg = "";
    else if (c === 38 || c === 48) {
      // 256-colour and true colour: the 16 basic ones map, others stay default.
      const mode = codes[i + 1];
      if (mode === 5) {
        const n = codes[i + 2];
        if (n !== undefined && n < 16) {
          if (c === 38) style.fg = `f${n}`;
          else style.bg = `b${n}`;
        }
        i += 2;
      } else if (mode === 2) i += 4;
    }
  }
}

function classes(s: Style): string {
  return [s.fg && `a-${s.fg}`, s.bg && `a-${s.bg}`, s.bold && "a-bold", s.dim && "a-dim", s.italic && "a-italic", s.underline && "a-ul"]
    .filter(Boolean)
    .join(" ");
}

/** Splits a line at its escape codes; the style carries over between calls when given. */
export function parseAnsi(line: string): Segment[] {
  const out: Segment[] = [];
  const style = plain();
  let last = 0;
  ESC.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = ESC.exec(line))) {
    if (m.index > last) out.push({ text: line.slice(last, m.index), classes: classes(style) });
    if (m[2] === "m") apply(style, m[1]);
    last = ESC.lastIndex;
  }
  if (last < line.length) out.push({ text: line.slice(last), classes: classes(style) });
  return out;
}

export function stripAnsi(line: string): string {
  return line.replace(ESC, "");
}
