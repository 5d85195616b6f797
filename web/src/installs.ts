// Installs (`/v1/installs`): a server bought, set up and given its first
// app in one go. This module owns what the pages need besides rendering:
// the view's types, which step's log to show, which form field an API
// refusal belongs to, and following one install's server-sent events.
import { ApiError, enc, projectHeaders } from "./api";
import { sseParser } from "./sse";

export type InstallStatus =
  | "pending"
  | "provisioning"
  | "configuring"
  | "deploying"
  | "verifying"
  | "completed"
  | "failed"
  | "destroying"
  | "destroyed";

export type StepName = "provision" | "configure" | "deploy" | "verify";
export type StepState = "pending" | "running" | "done" | "failed" | "cancelled";

export interface InstallStep {
  name: StepName;
  state: StepState;
  /** A deployment id: its logs at /v1/deployments/{id}/logs. */
  operation: string | null;
}

export interface Install {
  id: string;
  status: InstallStatus;
  provider: string;
  account: string;
  region: string;
  size: string;
  environment: string;
  estimated_cost_eur: string;
  domain: string | null;
  server: { id: string; name: string; state: string; ipv4: string | null; url: string };
  app: { name: string; url: string };
  steps: InstallStep[];
  app_url: string | null;
  dns: { type: string; name: string; value: string | null; note: string } | null;
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

/** Statuses after which the install's stream ends (a destroy starts a new one). */
const ENDED: ReadonlySet<InstallStatus> = new Set(["completed", "failed", "destroyed"]);
export const installEnded = (status: InstallStatus) => ENDED.has(status);

/** An owner may destroy what is not destroyed or being destroyed. */
export const destroyable = (status: InstallStatus) => status !== "destroying" && status !== "destroyed";

/**
 * The step whose log the page shows: the running one, else the failed one,
 * else the last that had an operation (the finished deploy of a completed
 * install); null before any operation exists.
 */
export function logStep(steps: InstallStep[]): InstallStep | null {
  const withOp = steps.filter((s) => s.operation);
  return (
    withOp.find((s) => s.state === "running") ??
    withOp.find((s) => s.state === "failed") ??
    withOp[withOp.length - 1] ??
    null
  );
}

/** The wizard's fields an API refusal can name. */
export type Field =
  | "provider"
  | "account"
  | "region"
  | "size"
  | "environment"
  | "server_name"
  | "domain"
  | "app"
  | "git_url"
  | "git_ref"
  | "cost";

/** Refusals whose code alone says which field is wrong. */
const BY_CODE: Record<string, Field> = {
  provider_mismatch: "provider",
  provider_not_supported: "provider",
  unknown_provider: "provider",
  not_found: "account",
  invalid_credentials: "account",
  provider_unreachable: "account",
  address_not_allowed: "account",
  unknown_region: "region",
  region_not_in_account: "region",
  unknown_size: "size",
  size_not_in_region: "size",
  cap_exceeded: "cost",
  domain_taken: "domain",
  invalid_git_url: "git_url",
};

/** The request's field names (as a `validation_failed` message starts) → the wizard's field. */
const BY_NAME: Record<string, Field> = {
  provider: "provider",
  account: "account",
  region: "region",
  size: "size",
  image: "size",
  environment: "environment",
  server_name: "server_name",
  domain: "domain",
  domains: "domain",
  "app.domains": "domain",
  name: "app",
  "app.name": "app",
  app: "app",
  git_url: "git_url",
  "app.git_url": "git_url",
  git_ref: "git_ref",
  "app.git_ref": "git_ref",
};

/**
 * Which field an API refusal of `POST /v1/installs` belongs to, or null
 * (shown above the form). `validation_failed` messages start with the field
 * (`app.git_url: required …`); a `conflict` names a server or an app.
 */
export function fieldOf(error: ApiError): Field | null {
  if (error.code === "validation_failed" || error.code === "invalid_domain") {
    const head = /^([a-z_.]+)(\[\d+\])?:/.exec(error.message)?.[1];
    return head ? BY_NAME[head] ?? null : null;
  }
  if (error.code === "conflict" || error.code === "app_exists" || error.code === "server_exists") {
    // By how the message starts: the names it quotes could be any word.
    const m = error.message.toLowerCase();
    if (/^app\b/.test(m)) return "app";
    if (/^(an? )?(server|target)\b/.test(m)) return "server_name";
    return null;
  }
  return BY_CODE[error.code] ?? null;
}

/**
 * Follows one install through `GET /v1/installs/{id}` as server-sent
 * events: `onView` gets the view at once and on every change. The stream
 * ends after a terminal status; a dropped one is reopened (with backoff)
 * until then. Returns a function that stops following.
 */
export function followInstall(id: string, onView: (view: Install) => void, onError: (e: unknown) => void): () => void {
  const controller = new AbortController();
  let retry = 0;
  const run = async () => {
    while (!controller.signal.aborted) {
      let last: Install | null = null;
      try {
        const response = await fetch(`/v1/installs/${enc(id)}`, {
          headers: { accept: "text/event-stream", ...projectHeaders() },
          signal: controller.signal,
          credentials: "same-origin",
          cache: "no-store",
        });
        if (!response.ok || !response.body) {
          const body = await response.json().catch(() => null);
          const error = new ApiError(response.status, body?.code ?? `http_${response.status}`, body?.message ?? `the API answered ${response.status}`);
          // A refusal (gone, forbidden) will not change by asking again.
          if (response.status >= 400 && response.status < 500 && response.status !== 429) return onError(error);
          throw error;
        }
        retry = 0;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const feed = sseParser((event, data) => {
          if (event !== "install") return;
          try {
            last = JSON.parse(data) as Install;
          } catch {
            return;
          }
          onView(last);
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(decoder.decode(value, { stream: true }));
        }
        if (last && installEnded((last as Install).status)) return;
      } catch (e) {
        if (controller.signal.aborted) return;
        onError(e);
      }
      retry = Math.min(retry + 1, 6);
      await new Promise((done) => setTimeout(done, Math.min(500 * 2 ** (retry - 1), 10_000)));
    }
  };
  run();
  return () => controller.abort();
}

/** An operation's span as `GET /v1/deployments/{id}` gives it. */
export interface OperationSpan {
  created_at: string;
  finished_at: string | null;
}

/**
 * How long each step took (or has taken so far), in ms, from its
 * operation's span; null for a step without one, and for a step sharing
 * the operation of the step before it (provision and configure are one
 * server create: its time is shown once, at provision).
 */
export function stepTimes(steps: InstallStep[], spans: Record<string, OperationSpan>, now: number): (number | null)[] {
  return steps.map((step, i) => {
    const span = step.operation ? spans[step.operation] : undefined;
    if (!span || step.state === "pending" || (i > 0 && steps[i - 1].operation === step.operation)) return null;
    const end = span.finished_at ? Date.parse(span.finished_at) : now;
    return Math.max(0, end - Date.parse(span.created_at));
  });
}
