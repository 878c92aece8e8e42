/** pulumi-discovery: discovery resources for Pulumi programs. */
export { ResourceDocument } from "./resource-document";
export type { ResourceDocumentArgs } from "./resource-document";
export * as model from "../provider/model";
