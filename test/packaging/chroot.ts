/** The Debian chroot of the package tests lives in scripts/lib (the node-add benchmark uses it too). */
export * from '../../scripts/lib/chroot.js';
