/** The status page's pieces without a server: its config section, session lifetime, and the rendering's escaping. */
import { parseRuntimeConfig } from "../../provider/runtime/config";
import { renderFragment } from "../../provider/runtime/status/render";
import { StatusSessions } from "../../provider/runtime/status/sessions";

const BASE = "version: v1\ncluster_name: c.test\npublic_addr: https://127.0.0.1:3080\n";
const parse = (extra = "") => parseRuntimeConfig(BASE + extra, "/etc/discovery/runtime.yaml");

describe("status_page config", () => {
  it("has no viewer token and 12-hour sessions by default", () => {
    expect(parse().statusPage).toEqual({ viewerTokenFile: undefined, sessionTtlMs: 12 * 3600_000 });
  });

  it("resolves the viewer token file against the config's directory", () => {
    const c = parse("status_page: {viewer_token_file: ./data/viewer.token, session_ttl: 30m}\n");
    expect(c.statusPage).toEqual({ viewerTokenFile: "/etc/discovery/data/viewer.token", sessionTtlMs: 1800_000 });
  });

  it.each([
    ["status_page: {session_ttl: 169h}", /:4:28: status_page\.session_ttl: must be at most 168h/],
    ["status_page: {session_ttl: soon}", /status_page\.session_ttl: "soon" is not a duration/],
    ["status_page: {viewer_token_file: ''}", /status_page\.viewer_token_file: must be the path of a file/],
    ["status_page: {viewer_token: abc}", /status_page\.viewer_token: /],
  ])("refuses %s, naming the field", (line, message) => {
    expect(() => parse(line + "\n")).toThrow(message);
  });
});

describe("status page sessions", () => {
  it("end at their fixed lifetime, whatever their use", () => {
    let t = 0;
    const s = new StatusSessions(60_000, () => t);
    const id = s.create("viewer");
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    t = 59_000;
    expect(s.get(id)?.role).toBe("viewer");
    t = 60_000;
    expect(s.get(id)).toBeUndefined();
  });

  it("are forgotten at logout, and unknown ids are nobody", () => {
    const s = new StatusSessions(60_000);
    const id = s.create("admin");
    s.delete(id);
    expect(s.get(id)).toBeUndefined();
    expect(s.get("guess")).toBeUndefined();
    expect(s.get(undefined)).toBeUndefined();
  });

  it("keep at most their bound, dropping the oldest", () => {
    const s = new StatusSessions(60_000, Date.now, 2);
    const first = s.create("viewer");
    s.create("viewer");
    s.create("viewer");
    expect(s.get(first)).toBeUndefined();
  });
});

describe("status page rendering", () => {
  it("escapes every value a node, task or audit event carries", () => {
    const evil = `"><script>alert(1)</script><img src=x onerror=alert(2)>`;
    const html = renderFragment("audit", {
      updatedAt: "2025-01-01T00:00:00.000Z",
      refusedOnly: false,
      events: [{ at: "2025-01-01T00:00:00.000Z", type: "join.refused", source: evil, token: evil, reason: evil }],
    });
    expect(html).not.toContain("<script>");
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  });
});
