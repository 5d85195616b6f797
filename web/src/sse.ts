// The text/event-stream format, parsed as chunks arrive: one parser for the
// tab's event stream (events.ts) and an install's stream (installs.ts),
// both read with fetch since they send headers `EventSource` cannot.

/** One dispatched event: its `event` name (default `message`), joined `data` lines and `id` if any. */
export type SseHandler = (event: string, data: string, id: string | null) => void;

/** A function fed decoded text in any slicing; it calls `handler` once per complete event. */
export function sseParser(handler: SseHandler): (chunk: string) => void {
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  let id: string | null = null;
  return (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
      if (line === "") {
        if (data.length) handler(event, data.join("\n"), id);
        event = "message";
        data = [];
        id = null;
      } else if (!line.startsWith(":")) {
        // A line starting with ':' is a keep-alive comment.
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
        else if (field === "id") id = value;
      }
    }
  };
}
