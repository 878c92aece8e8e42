/**
 * What each view of the status page shows, built from the same read models as the admin API (fleet.ts), paged and
 * filtered on the server so a fleet of any size costs the browser one page of rows.
 */
import { parsePublicKeyLine } from "../../ssh";
import { listCaViews, listNodeViews, listOpenTasks, listResourceViews, NodeView } from "../fleet";
import type { PendingNode } from "../rotation";
import type { AuditEvent, DiscoveryStatus, Store } from "../store/types";
import type { Task } from "../tasks";

/** Rows of the node table on one page. */
export const NODES_PER_PAGE = 100;

/** Audit events the page shows, newest first. */
export const AUDIT_EVENTS_SHOWN = 200;

/** The views, in the order of the navigation. */
export const VIEWS = [
  { id: "nodes", title: "Inventory" },
  { id: "configs", title: "Discovery configs" },
  { id: "tasks", title: "Tasks" },
  { id: "cas", title: "Certificate authorities" },
  { id: "audit", title: "Audit" },
] as const;

/** A view's id, as in `/status/<id>`. */
export type ViewId = (typeof VIEWS)[number]["id"];

/** The query of the inventory: `?page=`, `?cloud=`, `?label=key=value` (or `key` for any value), `?state=`. */
export interface NodeQuery {
  page?: string;
  cloud?: string;
  label?: string;
  state?: string;
}

/** One page of the inventory and the links around it. */
export interface NodesPage {
  rows: NodeView[];
  total: number;
  matching: number;
  stale: number;
  page: number;
  pages: number;
  clouds: string[];
  filter: { cloud: string; label: string; state: string };
  /** Query strings (with the filter) of the neighbouring pages; undefined at either end. */
  prev?: string;
  next?: string;
}

/** A predicate for `?label=`: `key=value` matches that pair, `key` any node having the key. */
function labelFilter(spec: string): (labels: Record<string, string>) => boolean {
  const i = spec.indexOf("=");
  if (i < 0) return (l) => Object.prototype.hasOwnProperty.call(l, spec);
  const key = spec.slice(0, i).trim();
  const value = spec.slice(i + 1).trim();
  return (l) => Object.prototype.hasOwnProperty.call(l, key) && l[key] === value;
}

function queryString(filter: NodesPage["filter"], page: number): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  if (page > 1) q.set("page", String(page));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The inventory page the query asks for: filtered, sorted by name, NODES_PER_PAGE rows. */
export async function nodesPage(store: Store, query: NodeQuery): Promise<NodesPage> {
  const all = await listNodeViews(store);
  const filter = {
    cloud: (query.cloud ?? "").slice(0, 64),
    label: (query.label ?? "").slice(0, 512),
    state: query.state === "stale" || query.state === "active" ? query.state : "",
  };
  const hasLabel = filter.label ? labelFilter(filter.label) : () => true;
  const matching = all
    .filter(
      (n) =>
        (!filter.cloud || (n.cloud ?? "none") === filter.cloud) &&
        (!filter.state || n.state === filter.state) &&
        hasLabel(n.labels),
    )
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const pages = Math.max(1, Math.ceil(matching.length / NODES_PER_PAGE));
  const asked = Number.parseInt(query.page ?? "1", 10);
  const page = Number.isFinite(asked) ? Math.min(Math.max(asked, 1), pages) : 1;
  return {
    rows: matching.slice((page - 1) * NODES_PER_PAGE, page * NODES_PER_PAGE),
    total: all.length,
    matching: matching.length,
    stale: all.filter((n) => n.state === "stale").length,
    page,
    pages,
    clouds: [...new Set(all.map((n) => n.cloud ?? "none"))].sort(),
    filter,
    prev: page > 1 ? queryString(filter, page - 1) : undefined,
    next: page < pages ? queryString(filter, page + 1) : undefined,
  };
}

/** A discovery_config row: its name, group, clouds and the status its runtime reported. */
export interface ConfigRow {
  name: string;
  group: string;
  clouds: string[];
  status?: DiscoveryStatus;
}

/** Every stored discovery_config with its status. */
export async function configRows(store: Store): Promise<ConfigRow[]> {
  return (await listResourceViews(store, "discovery_config")).map((doc) => {
    const spec = (doc.spec ?? {}) as Record<string, unknown>;
    return {
      name: (doc.metadata as { name: string }).name,
      group: typeof spec.discovery_group === "string" ? spec.discovery_group : "",
      clouds: ["aws", "gcp", "azure"].filter((c) => Array.isArray(spec[c]) && (spec[c] as unknown[]).length > 0),
      status: doc.status as DiscoveryStatus | undefined,
    };
  });
}

/** The open tasks. */
export function taskRows(store: Store, now: Date, ttlMs: number): Promise<Task[]> {
  return listOpenTasks(store, now, ttlMs);
}

/** A certificate authority row: its trusted keys' fingerprints and the nodes an open rotation has not reached. */
export interface CaRow {
  type: "host" | "user";
  keys: { fingerprint: string; algorithm: string; active: boolean }[];
  rotating: boolean;
  rotated: number;
  pending: PendingNode[];
}

/** `SHA256:<base64>` of an OpenSSH public key line, as `ssh-keygen -l` prints it. */
export function sshFingerprint(line: string): string {
  return `SHA256:${Buffer.from(parsePublicKeyLine(line).sha256, "hex").toString("base64").replace(/=+$/, "")}`;
}

/** The host and user certificate authorities; the first key listed is the one that signs. */
export async function caRows(store: Store): Promise<CaRow[]> {
  const cas = await listCaViews(store);
  return (["host", "user"] as const).flatMap((type) => {
    const ca = cas[type];
    if (!ca) return [];
    return [
      {
        type,
        keys: ca.public_keys.map((k, i) => ({
          fingerprint: sshFingerprint(k),
          algorithm: k.split(" ")[0],
          active: i === 0,
        })),
        rotating: ca.rotating,
        rotated: ca.rotation?.rotated.length ?? 0,
        pending: ca.rotation?.pending ?? [],
      },
    ];
  });
}

/** The newest audit events; `refusedOnly` keeps the refusals. */
export async function auditRows(store: Store, refusedOnly: boolean): Promise<AuditEvent[]> {
  const events = await store.listAudit(refusedOnly ? 2000 : AUDIT_EVENTS_SHOWN);
  return (refusedOnly ? events.filter((e) => e.type.endsWith("refused")) : events).slice(0, AUDIT_EVENTS_SHOWN);
}
