import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { armPage, ARM_PAGE_SIZE } from "../../provider/sandbox/azure-arm";
import { entraHandler, verifyAccessToken } from "../../provider/sandbox/azure-entra";
import { attestedTime } from "../../provider/sandbox/azure-imds";
import { parseAzureLaunchOptions } from "../../provider/sandbox/azure-launch-options";
import { azureTime } from "../../provider/sandbox/azure-world";
import { loadOrCreateIssuer } from "../../provider/sandbox/gcp-issuer";

const SUB = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
const base = { subscription: SUB, resourceGroup: "rg-1", region: "eastus" };

describe("sandbox Azure launch options", () => {
  it("fills in the defaults", () => {
    expect(parseAzureLaunchOptions({ ...base, subscription: SUB.toUpperCase() })).toEqual({
      ...base,
      tags: {},
      count: 1,
      agentless: false,
      state: "running",
      noAgent: false,
    });
  });
  it.each([
    ["subscription", { subscription: "123" }],
    ["resourceGroup", { resourceGroup: "ends-with-dot." }],
    ["resourceGroup", { resourceGroup: "has/slash" }],
    ["region", { region: "East US" }],
    ["count", { count: 0 }],
    ["state", { state: "stopped" }],
    ["noAgent", { noAgent: "yes" }],
    ["tags", { tags: { "a/b": "x" } }],
    ["scaleSet", { scaleSet: "-bad" }],
  ])("refuses a bad %s, naming it", (field, override) => {
    expect(() => parseAzureLaunchOptions({ ...base, ...override })).toThrow(expect.objectContaining({ field }));
  });
});

describe("sandbox Azure formats", () => {
  it("writes ARM's and the attested document's times", () => {
    const d = new Date(Date.UTC(2026, 10, 30, 13, 4, 5, 678));
    expect(azureTime(d)).toBe("2026-11-30T13:04:05.6780000+00:00");
    expect(attestedTime(d)).toBe("11/30/26 13:04:05 -0000");
  });
  it("pages lists with an absolute nextLink until the last page", () => {
    const all = Array.from({ length: ARM_PAGE_SIZE + 2 }, (_, i) => i);
    const first = armPage(all, new URL("https://127.0.0.1:1/subscriptions/s/x?api-version=1"));
    expect(first.value).toHaveLength(ARM_PAGE_SIZE);
    const next = new URL(first.nextLink!);
    expect(next.searchParams.get("api-version")).toBe("1");
    expect(armPage(all, next)).toEqual({ value: [ARM_PAGE_SIZE, ARM_PAGE_SIZE + 1] });
  });
});

describe("sandbox Entra ID", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-azure-unit-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tenant = { tenantId: "t-1", clientId: "c-1", clientSecret: "s3cret", objectId: "o-1" };
  const issuer = loadOrCreateIssuer(path.join(dir, "issuer.key"), "https://sts.windows.net/t-1/");
  const handle = entraHandler(tenant, issuer, () => "https://127.0.0.1:9");
  const post = (form: Record<string, string>, t = "t-1") =>
    handle({ url: `/${t}/oauth2/v2.0/token`, method: "POST", headers: {} } as never, new URLSearchParams(form).toString()); // prettier-ignore
  const grant = { grant_type: "client_credentials", client_id: "c-1", client_secret: "s3cret", scope: "https://arm/.default" }; // prettier-ignore

  it("issues tokens for the requested resource that ARM's check accepts", () => {
    const [status, body] = post(grant) as [number, { access_token: string }];
    expect(status).toBe(200);
    const claims = verifyAccessToken(body.access_token, issuer, ["https://arm/"]);
    expect(claims).toMatchObject({ aud: "https://arm", appid: "c-1", oid: "o-1", tid: "t-1" });
    expect(verifyAccessToken(body.access_token, issuer, ["https://management.azure.com/"])).toBeUndefined();
    expect(verifyAccessToken(body.access_token, issuer, ["https://arm"], Date.now() + 2 * 3600_000)).toBeUndefined();
    const [h, p, s] = body.access_token.split(".");
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, "base64url").toString()), oid: "x" }));
    expect(verifyAccessToken(`${h}.${forged.toString("base64url")}.${s}`, issuer, ["https://arm"])).toBeUndefined();
  });
  it.each([
    ["a wrong secret", { client_secret: "nope" }, 401, "invalid_client"],
    ["another application", { client_id: "c-2" }, 400, "unauthorized_client"],
    ["no /.default scope", { scope: "https://arm/user_impersonation" }, 400, "invalid_scope"],
    ["another grant", { grant_type: "password" }, 400, "unsupported_grant_type"],
  ])("refuses %s", (_name, override, status, error) => {
    const [s, body] = post({ ...grant, ...override });
    expect(s).toBe(status);
    expect(body).toMatchObject({ error });
  });
  it("names its own origin as the discovery document's issuer (MSAL checks it) and refuses other tenants", () => {
    const [, doc] = handle({ url: "/t-1/v2.0/.well-known/openid-configuration", method: "GET", headers: {} } as never, ""); // prettier-ignore
    expect(doc).toMatchObject({ issuer: "https://127.0.0.1:9/t-1/v2.0", token_endpoint: "https://127.0.0.1:9/t-1/oauth2/v2.0/token" }); // prettier-ignore
    expect(post(grant, "t-2")[0]).toBe(400);
    const [, jwks] = handle({ url: "/common/discovery/keys", method: "GET", headers: {} } as never, "");
    expect(jwks).toEqual(issuer.jwks);
  });
});
