/**
 * The AWS SDK (v3) prints a NodeVersionSupportWarning ("will require node >=22") through process.emitWarning the
 * first time a client is made on an older Node. It is about the SDK's future releases, not about anything a user of
 * ours can act on, and lands in every preview, log and CLI run. The SDK's own switch turns off that one warning and
 * no other; a user who set the variable keeps their value.
 */

/** Turns off the SDK's Node version warning in this process and its children; call before the first AWS client. */
export function silenceAwsSdkNodeVersionWarning(): void {
  if (!process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED)
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
}
