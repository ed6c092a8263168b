/** mergeExpositions (core/metrics.ts): a service child's families join the agent's, each family once. */
import { describe, expect, it } from 'vitest';
import { mergeExpositions } from '../../core/metrics.js';

const HISTOGRAM = `# HELP up_seconds Latency.
# TYPE up_seconds histogram
up_seconds_bucket{le="1"} 1
up_seconds_bucket{le="+Inf"} 1
up_seconds_sum 0.5
up_seconds_count 1
`;

const AGENT = `# HELP errors_total Collector errors.
# TYPE errors_total counter
errors_total{collector="nats"} 2
${HISTOGRAM}`;

const CHILD = `# HELP errors_total Collector errors.
# TYPE errors_total counter
errors_total{collector="sqs-queue-depths"} 1

# HELP depth Queue depth.
# TYPE depth gauge
depth{queue="a"} 3
`;

describe('mergeExpositions', () => {
  it("puts a later text's samples of a known family under the first HELP and TYPE, new families after", () => {
    expect(mergeExpositions([AGENT, CHILD])).toBe(`# HELP errors_total Collector errors.
# TYPE errors_total counter
errors_total{collector="nats"} 2
errors_total{collector="sqs-queue-depths"} 1
${HISTOGRAM}# HELP depth Queue depth.
# TYPE depth gauge
depth{queue="a"} 3
`);
  });

  it('keeps one text as it is (blank lines aside)', () => {
    expect(mergeExpositions([AGENT])).toBe(AGENT);
  });
});
