/** The node side of a gcp join: the VM's identity token from the metadata server. */

/**
 * The metadata server's identity token for `audience` (the cluster name), `format=full` so it carries the
 * `google.compute_engine` claims the runtime requires. `GCE_METADATA_HOST` overrides the server (tests, sandbox).
 */
export async function metadataIdentityToken(audience: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const host = env.GCE_METADATA_HOST || "metadata.google.internal";
  const query = new URLSearchParams({ audience, format: "full" });
  const url = `http://${host}/computeMetadata/v1/instance/service-accounts/default/identity?${query}`;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { "Metadata-Flavor": "Google" },
      redirect: "error",
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new Error(`cannot reach the metadata server at ${host} (is this a GCE VM?): ${(err as Error).message}`);
  }
  const text = (await res.text()).trim();
  if (res.status !== 200)
    throw new Error(`the metadata server answered HTTP ${res.status} for the identity token: ${text.slice(0, 200)}`);
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(text))
    throw new Error("the metadata server's identity token is not a JWT");
  return text;
}
