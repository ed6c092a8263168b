/** The static apt repository server of the package tests lives in scripts/lib (the node-add benchmark uses it too). */
export * from '../../scripts/lib/repo-server.js';
