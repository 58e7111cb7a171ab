export const FILE_SCENARIOS: readonly import('./scenarios.js').Scenario[] = [];
