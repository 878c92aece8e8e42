/**
 * What `discovery enroll --config FILE [--config FILE ...]` reads: whatever a user already has. Each file is a
 * runtime config (SPEC §3), a teleport.yaml with a `discovery_service` section, or resource documents holding
 * `discovery_config`s; the matchers of every file are combined. Each file must contribute a matcher.
 */
import * as fs from "fs";
import {
  type Cloud,
  CLOUDS,
  DEFAULT_POLL_INTERVAL,
  DEFAULT_STALE_NODE_GRACE,
  DiscoveryServiceSection,
  parseDocuments,
  parseYamlWith,
  SourceProblem,
} from "../model";
import { loadRuntimeConfig, RuntimeConfig } from "../runtime/config";
import { formatProblem } from "./validate";

/** The combined inputs of an enroll run. */
export interface EnrollInputs {
  matchers: Pick<DiscoveryServiceSection, Cloud>;
  /** The first poll_interval a file sets, else the default. */
  pollInterval: string;
  /** The first stale_node_grace a file sets, else the default. */
  staleNodeGrace: string;
  /** The runtime config among the files, when one names the runtime. */
  runtime?: RuntimeConfig;
}

/** Bad enroll inputs: the message names each file and problem, and what to add or fix. */
export class EnrollInputError extends Error {
  /** An error carrying the full, printable explanation. */
  constructor(message: string) {
    super(message);
    this.name = "EnrollInputError";
  }
}

const isMapping = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** A runtime config is one mapping with `public_addr` at the top and no `kind` (a teleport.yaml has neither). */
function looksLikeRuntimeConfig(values: unknown[]): boolean {
  return values.length === 1 && isMapping(values[0]) && !("kind" in values[0]) && "public_addr" in values[0];
}

function problemsError(problems: SourceProblem[]): EnrollInputError {
  return new EnrollInputError(problems.map(formatProblem).join("\n"));
}

/** Reads every file; throws an EnrollInputError (or the runtime config's ConfigError) on the first bad file. */
export function loadEnrollInputs(files: string[]): EnrollInputs {
  const out: EnrollInputs = {
    matchers: { aws: [], gcp: [], azure: [] } satisfies Record<Cloud, []>,
    pollInterval: "",
    staleNodeGrace: "",
  };
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      throw new EnrollInputError(`${file}: cannot read: ${(err as Error).message}`);
    }
    const raw = parseYamlWith(text, file, (value) => ({ value, problems: [] }), { splitLists: false });
    if (raw.problems.length) throw problemsError(raw.problems);
    const found: Pick<DiscoveryServiceSection, Cloud>[] = [];
    const settings: { poll_interval?: unknown; stale_node_grace?: unknown }[] = [];
    if (looksLikeRuntimeConfig(raw.values)) {
      const config = loadRuntimeConfig(file);
      if (out.runtime && out.runtime.publicAddr !== config.publicAddr)
        throw new EnrollInputError(
          `${file}: names the runtime ${config.publicAddr}, but an earlier file names ${out.runtime.publicAddr}; pass one runtime config`,
        );
      out.runtime ??= config;
      if (config.discoveryService?.enabled) found.push(config.discoveryService);
      settings.push((raw.values[0] as Record<string, Record<string, unknown>>).discovery_service ?? {});
    } else {
      const parsed = parseDocuments(text, file);
      if (parsed.problems.length) throw problemsError(parsed.problems);
      for (const r of parsed.resources) if (r.kind === "discovery_config") found.push(r.spec);
      // A teleport.yaml's poll interval and grace do not survive its conversion to a discovery_config.
      for (const v of raw.values)
        if (isMapping(v) && isMapping(v.discovery_service)) settings.push(v.discovery_service);
    }
    const count = found.reduce((n, m) => n + CLOUDS.reduce((k, c) => k + m[c].length, 0), 0);
    if (count === 0)
      throw new EnrollInputError(
        `${file}: holds no matchers; add aws, gcp or azure matchers under discovery_service (runtime config or ` +
          `teleport.yaml, with enabled: true) or a kind: discovery_config document with spec.aws, spec.gcp or spec.azure`,
      );
    for (const m of found) for (const cloud of CLOUDS) out.matchers[cloud].push(...(m[cloud] as never[]));
    for (const s of settings) {
      if (!out.pollInterval && typeof s.poll_interval === "string") out.pollInterval = s.poll_interval;
      if (!out.staleNodeGrace && typeof s.stale_node_grace === "string") out.staleNodeGrace = s.stale_node_grace;
    }
  }
  out.pollInterval ||= DEFAULT_POLL_INTERVAL;
  out.staleNodeGrace ||= DEFAULT_STALE_NODE_GRACE;
  return out;
}
