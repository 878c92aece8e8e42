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
import { checkRuntimeConfig, isRuntimeConfigValue, RuntimeConfig } from "../runtime/config";
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
  /** Warnings of the files (regions this version does not know), located. */
  warnings: SourceProblem[];
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

/**
 * Reads every file and checks all of them before refusing: an EnrollInputError lists every problem of every
 * file, each at its line, and what to add or fix.
 */
export function loadEnrollInputs(files: string[]): EnrollInputs {
  const out: EnrollInputs = {
    matchers: { aws: [], gcp: [], azure: [] } satisfies Record<Cloud, []>,
    pollInterval: "",
    staleNodeGrace: "",
    warnings: [],
  };
  const errors: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      errors.push(`${file}: cannot read: ${(err as Error).message}`);
      continue;
    }
    const raw = parseYamlWith(text, file, (value) => ({ value, problems: [] }), { splitLists: false });
    if (raw.problems.length) {
      errors.push(...raw.problems.map(formatProblem));
      continue;
    }
    const found: Pick<DiscoveryServiceSection, Cloud>[] = [];
    const settings: { poll_interval?: unknown; stale_node_grace?: unknown }[] = [];
    if (raw.values.length === 1 && isRuntimeConfigValue(raw.values[0])) {
      const { config, problems, warnings } = checkRuntimeConfig(text, file);
      out.warnings.push(...warnings);
      if (!config) {
        errors.push(...problems.map(formatProblem));
        continue;
      }
      if (out.runtime && out.runtime.publicAddr !== config.publicAddr) {
        errors.push(
          `${file}: names the runtime ${config.publicAddr}, but an earlier file names ${out.runtime.publicAddr}; pass one runtime config`,
        );
        continue;
      }
      out.runtime ??= config;
      if (config.discoveryService?.enabled) found.push(config.discoveryService);
      settings.push((raw.values[0] as Record<string, Record<string, unknown>>).discovery_service ?? {});
    } else {
      const parsed = parseDocuments(text, file);
      out.warnings.push(...parsed.warnings);
      if (parsed.problems.length) {
        errors.push(...parsed.problems.map(formatProblem));
        continue;
      }
      for (const r of parsed.resources) if (r.kind === "discovery_config") found.push(r.spec);
      // A teleport.yaml's poll interval and grace do not survive its conversion to a discovery_config.
      for (const v of raw.values)
        if (isMapping(v) && isMapping(v.discovery_service)) settings.push(v.discovery_service);
    }
    const count = found.reduce((n, m) => n + CLOUDS.reduce((k, c) => k + m[c].length, 0), 0);
    if (count === 0) {
      errors.push(
        `${file}: holds no matchers; add aws, gcp or azure matchers under discovery_service (runtime config or ` +
          `teleport.yaml, with enabled: true) or a kind: discovery_config document with spec.aws, spec.gcp or spec.azure`,
      );
      continue;
    }
    for (const m of found) for (const cloud of CLOUDS) out.matchers[cloud].push(...(m[cloud] as never[]));
    for (const s of settings) {
      if (!out.pollInterval && typeof s.poll_interval === "string") out.pollInterval = s.poll_interval;
      if (!out.staleNodeGrace && typeof s.stale_node_grace === "string") out.staleNodeGrace = s.stale_node_grace;
    }
  }
  if (errors.length) throw new EnrollInputError(errors.join("\n"));
  out.pollInterval ||= DEFAULT_POLL_INTERVAL;
  out.staleNodeGrace ||= DEFAULT_STALE_NODE_GRACE;
  return out;
}
