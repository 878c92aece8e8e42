/** The node side of an azure join: the attested document over the challenge and the managed identity token. */

/** Where IMDS answers: `AZURE_IMDS_ENDPOINT` (tests, sandbox) or Azure's link-local address. */
export const imdsEndpoint = (env: NodeJS.ProcessEnv = process.env): string =>
  (env.AZURE_IMDS_ENDPOINT || "http://169.254.169.254").replace(/\/+$/, "");

/** The resource the access token is for: Azure Resource Manager, as the runtime requires. */
export const ARM_RESOURCE = "https://management.azure.com/";

async function imdsJson(path: string, query: Record<string, string>, env: NodeJS.ProcessEnv): Promise<unknown> {
  const base = imdsEndpoint(env);
  let res: Response;
  try {
    res = await fetch(`${base}${path}?${new URLSearchParams(query)}`, {
      headers: { Metadata: "true" },
      redirect: "error",
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new Error(`cannot reach Azure IMDS at ${base} (is this an Azure VM?): ${(err as Error).message}`);
  }
  const text = await res.text();
  if (res.status !== 200) throw new Error(`Azure IMDS answered HTTP ${res.status} for ${path}: ${text.slice(0, 200)}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`Azure IMDS's answer for ${path} is not JSON`);
  }
}

/**
 * The request fields of an azure join: `attested_data` (IMDS's attested document with the challenge as nonce) and
 * `access_token` (the VM's managed identity token for Azure Resource Manager).
 */
export async function azureNodeFields(
  challenge: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ attested_data: unknown; access_token: string }> {
  const attested = await imdsJson("/metadata/attested/document", { "api-version": "2020-09-01", nonce: challenge }, env); // prettier-ignore
  if (typeof (attested as { signature?: unknown })?.signature !== "string")
    throw new Error("Azure IMDS's attested document has no signature");
  const token = await imdsJson("/metadata/identity/oauth2/token", { "api-version": "2018-02-01", resource: ARM_RESOURCE }, env); // prettier-ignore
  const accessToken = (token as { access_token?: unknown })?.access_token;
  if (typeof accessToken !== "string" || accessToken === "")
    throw new Error("Azure IMDS gave no access token: does this VM have a managed identity?");
  return { attested_data: attested, access_token: accessToken };
}
