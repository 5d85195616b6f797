//! Checks that a test-owned Postgres cluster keeps its data across a fast
//! restart and across a SIGKILL crash (recovery on the next start), and that
//! fresh migrated databases can be made on it and on the shared cluster.

use std::time::Instant;

use slipway_testkit::{fresh_database, fresh_database_on, process_group_alive, PgCluster};
use sqlx::{Connection, PgConnection};

async fn count(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    conn.close().await.unwrap();
    n
}

#[tokio::test]
async fn data_survives_restart_and_crash() {
    let t0 = Instant::now();
    let mut pg = PgCluster::start().await.expect("start cluster");
    eprintln!("PgCluster start (initdb + start): {:?}", t0.elapsed());

    let url = pg.admin_url();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES ('one'), ('two')")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let t1 = Instant::now();
    pg.restart().await.expect("restart");
    eprintln!("PgCluster restart: {:?}", t1.elapsed());
    assert_eq!(count(&url).await, 2);

    // A committed row must survive a crash: WAL replay on the next start.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES ('three')")
        .execute(&mut conn)
        .await
        .unwrap();
    let pidfile = std::fs::read_to_string(pg.data_dir().join("postmaster.pid")).unwrap();
    let postmaster: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
    pg.kill().await.expect("kill");
    assert!(
        sqlx::query("SELECT 1").execute(&mut conn).await.is_err(),
        "session of a killed cluster must fail"
    );
    assert!(
        !process_group_alive(postmaster),
        "no process of the crashed cluster may survive"
    );

    let t2 = Instant::now();
    pg.restart().await.expect("start after crash");
    eprintln!("PgCluster restart after kill: {:?}", t2.elapsed());
    assert_eq!(count(&url).await, 3);

    pg.stop().await.unwrap();
    pg.restart().await.unwrap();
    let dir = pg.data_dir().to_path_buf();
    drop(pg);
    assert!(!dir.exists(), "drop must remove {}", dir.display());
}

#[tokio::test]
async fn fresh_databases() {
    // On a test-owned cluster...
    let pg = PgCluster::start().await.expect("start cluster");
    let db = fresh_database_on(&pg.admin_url()).await.expect("fresh db");
    assert!(db.name.starts_with("slipway_test_"));
    assert!(db.url.ends_with(&db.name));
    sqlx::query("SELECT 1").execute(&db.pool).await.unwrap();
    db.drop_database().await;

    // ...and on the shared one, where dropping must really remove it.
    let db = fresh_database().await.expect("fresh db on shared cluster");
    let name = db.name.clone();
    let _extra = PgConnection::connect(&db.url).await.unwrap();
    db.drop_database().await;
    let mut admin = PgConnection::connect(&slipway_testkit::admin_database_url())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "database {name} should be dropped");
}
