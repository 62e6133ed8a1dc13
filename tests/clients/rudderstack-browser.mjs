// RudderStack's browser SDK v3, bundled build: its plugins ship in the bundle instead of
// loading from RudderStack's CDN.
export { RudderAnalytics } from "@rudderstack/analytics-js/bundled";
