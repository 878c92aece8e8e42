import { PostgresStore } from "./postgres";
import { SqliteStore } from "./sqlite";
import type { Store } from "./types";

export * from "./types";
export { PostgresStore } from "./postgres";
export { SqliteStore } from "./sqlite";
export { migrationsFor, type Migration, type Dialect } from "./migrations";

/** Where the state lives: a SQLite file for a single replica, PostgreSQL when several replicas share it. */
export type StoreConfig = { type: "sqlite"; path: string } | { type: "postgres"; url: string };

/** Opens the store and brings its schema up to date, so callers never see a store without its tables. */
export async function openStore(config: StoreConfig): Promise<Store> {
  const store = config.type === "sqlite" ? new SqliteStore(config.path) : new PostgresStore(config.url);
  try {
    await store.migrate();
  } catch (err) {
    // Don't leak a pool or file handle when the database is unreachable or a migration fails.
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
