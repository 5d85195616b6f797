// The API client: same-origin fetch with the session cookie, the project
// header and, on every state-changing request, the session's CSRF token.
// Errors carry the API's stable `code` and `message`.

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrfToken: string | null = null;
let projectId: string | null = null;

export function setCsrf(token: string | null) {
  csrfToken = token;
}
export function setProject(id: string | null) {
  projectId = id;
}
export function currentProject(): string | null {
  return projectId;
}

/** Called when the API answers 401: the session ended. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(fn: () => void) {
  onUnauthorized = fn;
}

export function projectHeaders(): Record<string, string> {
  return projectId ? { "slipway-project": projectId } : {};
}

export async function api<T = any>(
  method: string,
  path: string,
  body?: unknown,
  extra?: Record<string, string>,
): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json", ...projectHeaders(), ...extra };
  const raw = body instanceof Blob;
  if (body !== undefined && !raw) headers["content-type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["x-csrf-token"] = csrfToken;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : raw ? (body as Blob) : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (e) {
    throw new ApiError(0, "network", "the API cannot be reached");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: any = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/v1/sessions") onUnauthorized();
    throw new ApiError(
      response.status,
      parsed?.code ?? `http_${response.status}`,
      parsed?.message ?? `the API answered ${response.status}`,
    );
  }
  return parsed as T;
}

export const get = <T = any>(path: string) => api<T>("GET", path);
export const post = <T = any>(path: string, body?: unknown) => api<T>("POST", path, body ?? {});
export const patch = <T = any>(path: string, body: unknown) => api<T>("PATCH", path, body);
/** Uploads bytes as they are (an archive), typed by the file's name. */
export const upload = <T = any>(path: string, file: File) =>
  api<T>("POST", path, file, { "content-type": file.name.endsWith(".zip") ? "application/zip" : "application/gzip" });
export const del = <T = any>(path: string) => api<T>("DELETE", path);

export const enc = encodeURIComponent;

export type Role = "owner" | "member" | "viewer";
export const canShip = (role: Role | null) => role === "owner" || role === "member";
export const isOwner = (role: Role | null) => role === "owner";

export interface Me {
  user: { id: string; email: string; is_admin: boolean };
  csrf_token: string;
  projects: { id: string; name: string; role: Role }[];
}
