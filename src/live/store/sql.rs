//! SQL helpers: placeholders for each backend, values bound in order, and multi-row
//! inserts chunked under the parameter limit.

use anyhow::Result;
use sqlx::AnyConnection;

use super::Backend;

#[derive(Clone, Copy)]
pub(super) enum Val<'a> {
    I64(i64),
    F64(f64),
    OptI64(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// PostgreSQL allows 65,535 parameters per statement, SQLite 32,766; stay well below.
pub(super) const MAX_PARAMS: usize = 20_000;

/// Runs `sql` with `vals` bound in order.
pub(super) async fn execute_bound(conn: &mut AnyConnection, sql: &str, vals: Vec<Val<'_>>) -> Result<()> {
    let mut q = sqlx::query(sql);
    for v in vals {
        q = bind(q, v);
    }
    q.execute(conn).await?;
    Ok(())
}

/// (table, columns, rows).
pub(super) type TableRows<'a> = (&'static str, &'static [&'static str], Vec<Vec<Val<'a>>>);

/// `$1, $2...` for PostgreSQL; anonymous `?` for SQLite, because SQLite looks a named
/// parameter up by a linear scan, which makes binding n `$n` parameters O(n²): under
/// load, a batch's insert of thousands of rows spent its time there.
pub(super) fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Postgres => (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
        Backend::Sqlite => vec!["?"; n].join(", "),
    }
}

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

pub(super) fn bind<'q>(q: AnyQuery<'q>, v: Val<'q>) -> AnyQuery<'q> {
    match v {
        Val::I64(x) => q.bind(x),
        Val::F64(x) => q.bind(x),
        Val::OptI64(x) => q.bind(x),
        Val::Text(x) => q.bind(x),
        Val::OptText(x) => q.bind(x),
    }
}

/// `INSERT INTO table (columns) VALUES (...), (...)` for `rows` rows, its parameters
/// numbered from 1 (PostgreSQL; SQLite's are anonymous).
pub(super) fn insert_sql(backend: Backend, table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&placeholders(backend, 1 + i * columns.len(), columns.len()));
        sql.push(')');
    }
    sql
}

/// How many rows one INSERT may carry within `MAX_PARAMS`.
pub(super) fn rows_per_statement(columns: &[&str]) -> usize {
    (MAX_PARAMS / columns.len()).max(1)
}

pub(super) async fn insert_rows(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Val<'_>>],
) -> Result<()> {
    insert_rows_with(backend, tx, table, columns, rows, "").await
}

pub(super) async fn insert_rows_with(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Val<'_>>],
    suffix: &str,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    for chunk in rows.chunks(rows_per_statement(columns)) {
        let mut sql = insert_sql(backend, table, columns, chunk.len());
        sql.push_str(suffix);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = bind(q, *v);
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
