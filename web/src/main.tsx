// The dashboard's shell: who is signed in, which project, the navigation,
// and which page the path names.
import "./app.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, get, Me, Role, setCsrf, setProject, whenUnauthorized, del, isOwner } from "./api";
import { events } from "./events";
import { match, navigate, usePath } from "./router";
import { Link } from "./ui";
import { SignIn } from "./pages/SignIn";
import { Projects } from "./pages/Projects";
import { AppsPage } from "./pages/Apps";
import { AppPage } from "./pages/App";
import { DeploymentPage } from "./pages/Deployment";
import { Wizard } from "./pages/Wizard";
import { InstallPage, InstallsPage } from "./pages/Install";
import { Overview } from "./pages/Overview";
import { Tokens, Audit, DeadJobs, Targets } from "./pages/Admin";
import { Members } from "./pages/Members";
import { Accept } from "./pages/Accept";

export interface Ctx {
  me: Me;
  project: { id: string; name: string; role: Role };
}

function StreamState() {
  const [state, setState] = useState(events.state);
  useEffect(() => events.onState(() => setState(events.state)), []);
  if (state === "idle") return null;
  return <span class={`stream ${state}`} data-stream={state} title="live updates">{state === "open" ? "live" : state}</span>;
}

function Shell({ ctx, children }: { ctx: Ctx; children: any }) {
  const base = `/p/${encodeURIComponent(ctx.project.name)}`;
  const signOut = async () => {
    try {
      await del("/v1/session");
    } finally {
      location.assign("/sign-in");
    }
  };
  return (
    <div class="shell">
      <header>
        <Link href={base} class="brand">Slipway</Link>
        <nav>
          <Link href={`${base}/apps`}>Apps</Link>
          <Link href={`${base}/installs`}>Installs</Link>
          <Link href={`${base}/targets`}>Targets</Link>
          <Link href={`${base}/dead-jobs`}>Dead jobs</Link>
          {isOwner(ctx.project.role) ? <Link href={`${base}/members`}>Members</Link> : null}
          {isOwner(ctx.project.role) ? <Link href={`${base}/tokens`}>Tokens</Link> : null}
          {isOwner(ctx.project.role) ? <Link href={`${base}/audit`}>Audit</Link> : null}
        </nav>
        <span class="who">
          <StreamState />
          <Link href="/">{ctx.project.name}</Link> · <span data-role={ctx.project.role}>{ctx.project.role}</span> · {ctx.me.user.email}{" "}
          <button class="link" onClick={signOut}>Sign out</button>
        </span>
      </header>
      <main>{children}</main>
    </div>
  );
}

function Root() {
  const path = usePath();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [projects, setProjects] = useState<Me["projects"]>([]);

  const load = async () => {
    try {
      const found = await get<Me>("/v1/me");
      setCsrf(found.csrf_token);
      // A platform admin owns every project, members or not.
      const listed = await get<{ items: Me["projects"] }>("/v1/projects");
      setProjects(listed.items);
      setMe(found);
    } catch (e) {
      setMe(null);
    }
  };
  useEffect(() => {
    whenUnauthorized(() => {
      setMe(null);
      // An invitation link opens signed out: it stays on its page.
      if (!location.pathname.startsWith("/invite/")) navigate("/sign-in", true);
    });
    load();
  }, []);

  if (me === undefined) return <p class="loading">Loading…</p>;
  const invited = match("/invite/:token", path);
  if (invited) {
    return <Accept token={invited.token} onAccepted={async () => { await load(); navigate("/", true); }} />;
  }
  if (me === null || path === "/sign-in") {
    return <SignIn onSignedIn={async () => { await load(); navigate("/", true); }} />;
  }
  if (path === "/" || path === "") return <Projects projects={projects} />;
  const p = match("/p/:project/*", path.split("/").slice(0, 3).join("/") + "/*");
  const projectName = p?.project;
  const project = projects.find((x) => x.name === projectName);
  if (!project) {
    return <Projects projects={projects} missing={projectName} />;
  }
  setProject(project.id);
  const ctx: Ctx = { me, project };
  const rest = "/" + path.split("/").slice(3).join("/");
  let page;
  let m: Record<string, string> | null;
  if (rest === "/") page = <Overview ctx={ctx} />;
  else if (rest === "/apps") page = <AppsPage ctx={ctx} />;
  else if ((m = match("/apps/:app", rest))) page = <AppPage ctx={ctx} name={m.app} key={m.app} />;
  else if ((m = match("/apps/:app/deployments/:id", rest))) page = <DeploymentPage ctx={ctx} app={m.app} id={m.id} key={m.id} />;
  else if (rest === "/install") page = <Wizard ctx={ctx} />;
  else if (rest === "/installs") page = <InstallsPage ctx={ctx} />;
  else if ((m = match("/installs/:id", rest))) page = <InstallPage ctx={ctx} id={m.id} key={m.id} />;
  else if (rest === "/members") page = <Members ctx={ctx} />;
  else if (rest === "/tokens") page = <Tokens ctx={ctx} />;
  else if (rest === "/audit") page = <Audit ctx={ctx} />;
  else if (rest === "/dead-jobs") page = <DeadJobs ctx={ctx} />;
  else if (rest === "/targets") page = <Targets ctx={ctx} />;
  else page = <p>No such page. <Link href={`/p/${encodeURIComponent(project.name)}`}>Back to the overview</Link></p>;
  return <Shell ctx={ctx} key={project.id}>{page}</Shell>;
}

export { ApiError };
// The event stream, reachable from the console (and the browser test).
(window as any).slipway = { events };
render(<Root />, document.getElementById("root")!);
