/**
 * The parts of prom-client the agent loads one by one (core/metrics.ts): its index also loads the
 * default collectors, the summary's t-digest and OpenTelemetry, about 5 MB of resident memory the
 * idle agent must not pay. Each module exports the class its index does.
 */
declare module 'prom-client/lib/registry.js' {
  import type { Registry } from 'prom-client';
  const RegistryClass: typeof Registry;
  export default RegistryClass;
}
declare module 'prom-client/lib/counter.js' {
  import type { Counter } from 'prom-client';
  const CounterClass: typeof Counter;
  export default CounterClass;
}
declare module 'prom-client/lib/gauge.js' {
  import type { Gauge } from 'prom-client';
  const GaugeClass: typeof Gauge;
  export default GaugeClass;
}
declare module 'prom-client/lib/histogram.js' {
  import type { Histogram } from 'prom-client';
  const HistogramClass: typeof Histogram;
  export default HistogramClass;
}
/** One of prom-client's default process collectors: registers its metrics in `registry`. */
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client';
  const collector: (registry: Registry, config?: { prefix?: string }) => void;
  export default collector;
}
