/**
 * The runtime config's join.certificate_ttl, audit and metrics sections: defaults, and each bad value refused at
 * its line with the field's name and the fix.
 */
import { parseRuntimeConfig } from "../../provider/runtime/config";

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
