import type { ScenarioContext, ScenarioResult } from '../scenario.js';
export async function fuzz(_: ScenarioContext): Promise<ScenarioResult> {
  return { title: 'fuzz', description: '', table: { head: [], rows: [] }, findings: [] };
}
