// Segment's browser library as a shop's own bundler would ship it (esbuild stands in for it).
export { AnalyticsBrowser } from "@segment/analytics-next";
