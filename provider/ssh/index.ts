/** SSH certificate authority: CA key pairs and rotation, host and user certificates, sshd_config editing. */
export * from "./ca";
export * from "./certs";
export * from "./keys";
export * from "./sshd-config";
