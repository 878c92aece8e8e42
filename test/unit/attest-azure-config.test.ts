import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseRuntimeConfig, readCaFiles } from "../../provider/runtime/config";
import { azureTrust } from "../fixtures/azure-tokens";

/** `join.azure` of the runtime config: defaults, paths relative to the file, errors that name the field. */
const BASE = "version: v1\ncluster_name: discovery.test\npublic_addr: https://127.0.0.1:3080\n";

describe("runtime config join.azure", () => {
  it("defaults to no extra CAs and Entra ID's public key set", () => {
    expect(parseRuntimeConfig(BASE, "/etc/discovery/runtime.yaml").join.azure).toEqual({
      extraCaCerts: [],
      jwksUrl: "https://login.microsoftonline.com/common/discovery/keys",
    });
  });

  it("resolves extra_ca_certs against the config's directory and keeps jwks_url", () => {
    const text = `${BASE}join:\n  azure:\n    extra_ca_certs: [./azure-ca.pem]\n    jwks_url: https://127.0.0.1:9443/common/discovery/keys\n`; // prettier-ignore
    expect(parseRuntimeConfig(text, "/srv/sandbox/runtime.yaml").join.azure).toEqual({
      extraCaCerts: ["/srv/sandbox/azure-ca.pem"],
      jwksUrl: "https://127.0.0.1:9443/common/discovery/keys",
    });
  });

  it.each([
    ["jwks_url: not a url", /runtime\.yaml:\d+:\d+: join\.azure\.jwks_url: must be a URL/],
    ["jwks_url: ftp://keys.example.com/keys", /join\.azure\.jwks_url: must be an https:\/\/ URL/],
    ["extra_ca_certs: ['']", /join\.azure\.extra_ca_certs\[0\]: must be the path of a PEM file/],
    ["issuer: https://sts.windows.net/", /join\.azure/],
  ])("refuses %s", (line, message) => {
    expect(() => parseRuntimeConfig(`${BASE}join:\n  azure:\n    ${line}\n`, "runtime.yaml")).toThrow(message);
  });

  it("reads CA files at start, naming the field and the file when one is missing or holds no certificate", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-azure-config-"));
    try {
      const good = path.join(dir, "ca.pem");
      fs.writeFileSync(good, (await azureTrust()).root.certPem);
      expect(readCaFiles([good], "join.azure.extra_ca_certs")[0]).toContain("BEGIN CERTIFICATE");
      const empty = path.join(dir, "empty.pem");
      fs.writeFileSync(empty, "not a certificate\n");
      expect(() => readCaFiles([good, empty], "join.azure.extra_ca_certs")).toThrow(
        `join.azure.extra_ca_certs[1]: ${empty} holds no PEM certificate`,
      );
      expect(() => readCaFiles([path.join(dir, "missing.pem")], "join.azure.extra_ca_certs")).toThrow(
        /^join\.azure\.extra_ca_certs\[0\]: cannot read .*missing\.pem/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
