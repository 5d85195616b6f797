// The project picker: every request after it names the project in the
// `Slipway-Project` header.
import { Me } from "../api";
import { Link } from "../ui";

export function Projects({ projects, missing }: { projects: Me["projects"]; missing?: string }) {
  return (
    <div class="card picker">
      <h1>Projects</h1>
      {missing ? <p class="error">No project named <code>{missing}</code> that you can see.</p> : null}
      {projects.length === 0 ? <p>You are not a member of any project yet: ask an owner to invite you.</p> : null}
      <ul class="projects">
        {projects.map((p) => (
          <li key={p.id}>
            <Link href={`/p/${encodeURIComponent(p.name)}/apps`}>{p.name}</Link> <span class="muted">{p.role}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
