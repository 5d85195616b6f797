// The project's overview from `GET /v1/deployments/stats`: deploys per day,
// failure rate, time per stage. The API computes; the page only draws.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api";
import type { Ctx } from "../main";
import { duration, ErrorBox, Link } from "../ui";

export function Overview({ ctx }: { ctx: Ctx }) {
  const [stats, setStats] = useState<any>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    get("/v1/deployments/stats").then(setStats, setError);
  }, []);
  const max = Math.max(1, ...(stats?.per_day ?? []).map((d: any) => d.deploys));
  return (
    <section>
      <h1>{ctx.project.name}</h1>
      <p><Link href={`/p/${encodeURIComponent(ctx.project.name)}/apps`}>Apps →</Link></p>
      <ErrorBox error={error} />
      {stats ? (
        <>
          <div class="cards">
            <div class="card stat"><strong>{stats.deploys}</strong> deploys in {stats.days} days</div>
            <div class="card stat"><strong>{stats.live}</strong> went live</div>
            <div class="card stat"><strong>{stats.failed}</strong> failed</div>
            <div class="card stat"><strong>{stats.failure_rate === null ? "—" : `${(stats.failure_rate * 100).toFixed(1)} %`}</strong> failure rate</div>
          </div>
          <h2>Deploys per day</h2>
          <svg class="bars" viewBox={`0 0 ${stats.per_day.length * 12} 100`} preserveAspectRatio="none" role="img" aria-label="Deploys per day">
            {stats.per_day.map((d: any, i: number) => {
              const h = (d.deploys / max) * 96;
              const f = (d.failed / max) * 96;
              return (
                <g key={d.day}>
                  <title>{`${d.day}: ${d.deploys} deploys, ${d.live} live, ${d.failed} failed`}</title>
                  <rect x={i * 12 + 1} y={100 - h} width={10} height={h} class="bar" />
                  <rect x={i * 12 + 1} y={100 - f} width={10} height={f} class="bar failed" />
                </g>
              );
            })}
          </svg>
          <h2>Time per stage</h2>
          <table>
            <thead><tr><th>Stage</th><th>Finished</th><th>p50</th><th>p95</th></tr></thead>
            <tbody>
              {["building", "provisioning", "deploying"].map((s) => {
                const t = stats.stages[s];
                return <tr key={s}><td>{s}</td><td>{t?.count ?? 0}</td><td>{t ? duration(t.p50_ms) : "—"}</td><td>{t ? duration(t.p95_ms) : "—"}</td></tr>;
              })}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}
