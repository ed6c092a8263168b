/** Load balancer inputs for the lb tests: an HTTP balancer on port 80 for `<name>.example`, targets tagged `app=<name>`. */
import type { LoadBalancerInput } from '../../src/lb/record.js';

/** A valid balancer named `name`, with `over` replacing any field. */
export const lbInput = (name: string, over: Partial<LoadBalancerInput> = {}): LoadBalancerInput => ({
  name,
  listen: { port: 80 },
  mode: 'http',
  hosts: [`${name}.example`],
  targets: [{ selector: { kind: 'tag', key: 'app', value: name }, port: 8080 }],
  ...over,
});
