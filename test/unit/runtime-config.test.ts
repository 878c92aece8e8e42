/**
 * The runtime config's join.certificate_ttl, audit and metrics sections and log_level: defaults, and each bad value
 * refused at its line with the field's name and the fix.
 */
import { parseRuntimeConfig } from "../../provider/runtime/config";
import { runtimeLogger } from "../../provider/runtime/server";

const BASE = "version: v1\ncluster_name: c.test\npublic_addr: https://127.0.0.1:3080\n";
const parse = (extra = "") => parseRuntimeConfig(BASE + extra, "/etc/discovery/runtime.yaml");

describe("runtime config: certificate lifetime, audit retention, metrics access", () => {
  it("defaults to 30-day certificates, 30 days of audit, and an open /metrics", () => {
    const c = parse();
    expect(c.join.certificateTtlSeconds).toBe(30 * 24 * 3600);
    expect(c.audit.retentionMs).toBe(30 * 24 * 3600_000);
    expect(c.metrics.requireAdminToken).toBe(false);
  });

  it("reads the values it is given", () => {
    const c = parse("join: {certificate_ttl: 2h30m}\naudit: {retention: 168h}\nmetrics: {require_admin_token: true}\n");
    expect(c.join.certificateTtlSeconds).toBe(9000);
    expect(c.audit.retentionMs).toBe(7 * 24 * 3600_000);
    expect(c.metrics.requireAdminToken).toBe(true);
  });

  it.each([
    ["join: {certificate_ttl: 30d}", /:4:25: join\.certificate_ttl: "30d" is not a duration; write it like 5m/],
    ["join: {certificate_ttl: 721h}", /:4:25: join\.certificate_ttl: must be at most 720h \(30 days\)/],
    ["join: {certificate_ttl: 1500ms}", /join\.certificate_ttl: must be a whole number of seconds/],
    ["join: {certificate_ttl: 0s}", /join\.certificate_ttl: duration must be greater than zero/],
    ["audit: {retention: forever}", /:4:20: audit\.retention: "forever" is not a duration/],
    ["audit: {retention: 0h}", /audit\.retention: duration must be greater than zero/],
    ["audit: {retain: 1h}", /:4:9: audit\.retain: /],
    ["metrics: {require_admin_token: yes please}", /:4:32: metrics\.require_admin_token: /],
    ["metrics: {admin_token: true}", /metrics\.admin_token: /],
  ])("refuses %s, naming the field at its line", (line, message) => {
    expect(() => parse(line + "\n")).toThrow(message);
  });
});

describe("runtime config: log_level", () => {
  /** What a runtime with this config writes for one line at each level. */
  const written = (extra: string) => {
    const lines: string[] = [];
    const logger = runtimeLogger(parse(extra), { write: (l: string) => void lines.push(JSON.parse(l).msg) });
    for (const level of ["trace", "debug", "info", "warn", "error"] as const) logger[level](level);
    return lines;
  };

  it("writes info and above by default", () => {
    expect(parse().logLevel).toBe("info");
    expect(written("")).toEqual(["info", "warn", "error"]);
  });

  it("writes what the level says", () => {
    expect(written("log_level: debug\n")).toEqual(["debug", "info", "warn", "error"]);
    expect(written("log_level: warn\n")).toEqual(["warn", "error"]);
  });

  it.each([
    ["log_level: verbose", /:4:12: log_level: must be one of trace, debug, info, warn, error, fatal/],
    ["log_level: INFO", /:4:12: log_level: must be one of trace, debug, info, warn, error, fatal/],
    ["loglevel: info", /:4:1: loglevel: .*log_level/],
  ])("refuses %s, naming the field at its line", (line, message) => {
    expect(() => parse(line + "\n")).toThrow(message);
  });
});
