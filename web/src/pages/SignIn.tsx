// Sign in: email and password for a session cookie; the CSRF token the API
// answers is kept in memory (and read again from /v1/me after a reload).
import { useState } from "preact/hooks";
import { post, setCsrf } from "../api";
import { ErrorBox } from "../ui";

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const signed = await post<{ csrf_token: string }>("/v1/sessions", { email, password });
      setCsrf(signed.csrf_token);
      onSignedIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card signin" onSubmit={submit}>
      <h1>Sign in to Slipway</h1>
      <label>
        Email
        <input name="email" type="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
      </label>
      <label>
        Password
        <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      </label>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>Sign in</button>
    </form>
  );
}
