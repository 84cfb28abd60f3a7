/**
 * The part of `@npmcli/arborist` (npm's own tree library, CommonJS, no bundled types) that
 * release/deps reads: the actual tree of an installed project, its nodes and dependency edges.
 */
declare module '@npmcli/arborist' {
  namespace Arborist {
    type EdgeType = 'prod' | 'dev' | 'optional' | 'peer' | 'peerOptional' | 'workspace';
    interface Edge {
      readonly name: string;
      readonly type: EdgeType;
      readonly spec: string;
      readonly from: Node | null;
      /** The node this edge resolves to in the tree (a Link for workspaces and `file:` links), or null. */
      readonly to: Node | null;
    }
    interface Node {
      /** The folder name under node_modules (an `npm:` alias's name), or the root's package name. */
      readonly name: string;
      readonly packageName: string;
      readonly version: string;
      readonly package: { name?: string; version?: string; [key: string]: unknown };
      readonly path: string;
      readonly realpath: string;
      readonly location: string;
      readonly isLink: boolean;
      readonly isRoot: boolean;
      readonly dummy: boolean;
      /** Only reachable through optional dependencies (set by loadActual's dependency flags). */
      readonly optional: boolean;
      /** For a Link: the node of the linked folder. */
      readonly target: Node | null;
      readonly root: Node;
      readonly edgesOut: Map<string, Edge>;
      readonly children: Map<string, Node>;
      readonly inventory: Map<string, Node>;
      /** On a workspaces root: workspace name -> absolute path. */
      readonly workspaces: Map<string, string> | null;
      readonly errors: Error[];
      /** The node Node would find for `name` from this one, in the tree. */
      resolve(name: string): Node | null;
    }
  }
  class Arborist {
    constructor(options: { path: string; [key: string]: unknown });
    loadActual(options?: Record<string, unknown>): Promise<Arborist.Node>;
  }
  export = Arborist;
}
