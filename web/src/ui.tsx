// Small shared pieces: links, errors, state badges, times.
import { ComponentChildren } from "preact";
import { ApiError } from "./api";
import { onLink } from "./router";

export function Link(props: { href: string; children: ComponentChildren; class?: string }) {
  return (
    <a href={props.href} class={props.class} onClick={onLink}>
      {props.children}
    </a>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as ApiError;
  return (
    <p class="error" role="alert">
      {e.code ? <code>{e.code}</code> : null} {e.message ?? String(error)}
    </p>
  );
}

const TERMINAL = new Set(["live", "failed", "cancelled", "superseded"]);
export const isTerminal = (state: string) => TERMINAL.has(state);

export function Badge({ state }: { state: string | null | undefined }) {
  const s = state ?? "unknown";
  return <span class={`badge s-${s.replace(/[^a-z_]/g, "")}`}>{s.replace(/_/g, " ")}</span>;
}

export function ago(at: string | null | undefined): string {
  if (!at) return "";
  const s = Math.round((Date.now() - Date.parse(at)) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(at).toLocaleDateString();
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export const shortId = (id: string) => id.slice(-8);

export function describeSource(source: any): string {
  if (!source) return "";
  if (source.action) return source.action;
  if (source.rollback_to) return `rollback to ${shortId(source.rollback_to)}`;
  if (source.version) return `archive ${shortId(source.version)}`;
  if (source.git_ref) return `git ${source.git_ref}`;
  if (source.kind) return String(source.kind);
  return "default ref";
}
