/**
 * The program a VM's bootstrap runs (with the Node it installed) to fetch the runtime's secret bundle from the
 * cloud's secret store with the VM's own identity, and write each secret to its file, mode 0600, owned by the
 * service user. Kept as text here because it is shipped inside user data / the startup script.
 *
 * Environment: DISCOVERY_SECRETS_SOURCE (`aws-ssm` | `gcp-secret-manager`), DISCOVERY_SECRETS_NAME (the SSM
 * parameter name, or `projects/P/secrets/S`), DISCOVERY_SECRETS_REGION (aws), DISCOVERY_PACKAGE_DIR (where
 * @aws-sdk/client-ssm resolves from), DISCOVERY_SECRET_FILES (JSON: bundle field -> file), DISCOVERY_UID,
 * DISCOVERY_GID; GCE_METADATA_HOST and DISCOVERY_SECRETMANAGER_ENDPOINT override the GCP endpoints.
 */
export const FETCH_SECRETS_JS = String.raw`"use strict";
const fs = require("fs");
const env = process.env;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fromAwsSsm() {
  const sdk = require(require.resolve("@aws-sdk/client-ssm", { paths: [env.DISCOVERY_PACKAGE_DIR] }));
  const ssm = new sdk.SSMClient({ region: env.DISCOVERY_SECRETS_REGION });
  try {
    const out = await ssm.send(new sdk.GetParameterCommand({ Name: env.DISCOVERY_SECRETS_NAME, WithDecryption: true }));
    return out.Parameter.Value;
  } finally {
    ssm.destroy();
  }
}

async function fromGcpSecretManager() {
  const host = env.GCE_METADATA_HOST || "metadata.google.internal";
  const token = await fetch("http://" + host + "/computeMetadata/v1/instance/service-accounts/default/token", {
    headers: { "Metadata-Flavor": "Google" },
  });
  if (!token.ok) throw new Error("metadata server token: HTTP " + token.status);
  const accessToken = (await token.json()).access_token;
  const base = env.DISCOVERY_SECRETMANAGER_ENDPOINT || "https://secretmanager.googleapis.com";
  const url = base + "/v1/" + env.DISCOVERY_SECRETS_NAME + "/versions/latest:access";
  const answer = await fetch(url, { headers: { authorization: "Bearer " + accessToken } });
  if (!answer.ok) throw new Error(url + ": HTTP " + answer.status + " " + (await answer.text()).slice(0, 300));
  return Buffer.from((await answer.json()).payload.data, "base64").toString("utf8");
}

async function fetchBundle() {
  const source = env.DISCOVERY_SECRETS_SOURCE;
  if (source !== "aws-ssm" && source !== "gcp-secret-manager") throw new Error("unknown secrets source " + source);
  // A new instance profile or IAM binding takes a while to reach the VM: retry for about three minutes.
  for (let attempt = 1; ; attempt++) {
    try {
      return JSON.parse(source === "aws-ssm" ? await fromAwsSsm() : await fromGcpSecretManager());
    } catch (err) {
      if (attempt >= 18) throw err;
      console.error("fetch-secrets: attempt " + attempt + " failed (" + err.message + "); retrying in 10 s");
      await sleep(10000);
    }
  }
}

(async () => {
  const bundle = await fetchBundle();
  const uid = Number(env.DISCOVERY_UID);
  const gid = Number(env.DISCOVERY_GID);
  for (const [field, file] of Object.entries(JSON.parse(env.DISCOVERY_SECRET_FILES))) {
    const value = bundle[field];
    if (typeof value !== "string" || value === "") throw new Error("the secret bundle has no " + field);
    const tmp = file + ".tmp";
    fs.rmSync(tmp, { force: true });
    fs.writeFileSync(tmp, value.endsWith("\n") ? value : value + "\n", { mode: 0o600, flag: "wx" });
    fs.chownSync(tmp, uid, gid);
    fs.renameSync(tmp, file);
  }
  console.log("fetch-secrets: wrote " + Object.keys(JSON.parse(env.DISCOVERY_SECRET_FILES)).join(", "));
})().catch((err) => {
  console.error("fetch-secrets: " + err.message);
  process.exit(1);
});
`;
