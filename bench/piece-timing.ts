/**
 * Timing for the per-piece benchmarks: a piece and its library baselines, measured in the same process and run, in
 * interleaved rounds (each round runs every contender, starting one further along the list), so that drift on a shared
 * machine hits all alike. Ratios are taken within a round; the median over rounds is reported.
 */

export interface Contender {
  name: string;
  /** One unit of work (a decode, a burst of calls); `units` of it are timed back to back. */
  run(): void | Promise<void>;
}

export interface PieceResult {
  /** Per contender: units per second in the median round, and its ratio to the baseline (the first contender). */
  contenders: { name: string; unitsPerSecond: number; vsBaseline: number }[];
  /** Per round, each non-baseline contender's ratio (baseline time / its time: above 1 is faster). */
  ratiosByRound: Record<string, number[]>;
  rounds: number;
  unitsPerRound: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function timeUnits(contender: Contender, units: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < units; i++) await contender.run();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** `contenders[0]` is the baseline. Warms each up (JIT, connections), then `rounds` rounds of `units` units each. */
export async function comparePieces(contenders: Contender[], options: { rounds: number; units: number; warmUpUnits: number }): Promise<PieceResult> {
  for (const contender of contenders) await timeUnits(contender, options.warmUpUnits);
  const seconds: number[][] = contenders.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const index = (round + k) % contenders.length;
      seconds[index]!.push(await timeUnits(contenders[index]!, options.units));
    }
  }
  const ratiosByRound: Record<string, number[]> = {};
  const result = contenders.map((contender, index) => {
    const ratios = seconds[0]!.map((baseline, round) => baseline / seconds[index]![round]!);
    if (index > 0) ratiosByRound[contender.name] = ratios;
    return { name: contender.name, unitsPerSecond: options.units / median(seconds[index]!), vsBaseline: median(ratios) };
  });
  return { contenders: result, ratiosByRound, rounds: options.rounds, unitsPerRound: options.units };
}

/** A markdown table of a comparison: `unit` names what one unit is (e.g. "messages"). */
export function pieceTable(result: PieceResult, unit: string, perUnit?: { factor: number; label: string }): string {
  const rows = result.contenders.map((contender, index) => {
    const extra = perUnit ? ` | ${((1e9 / contender.unitsPerSecond) / perUnit.factor).toFixed(0)}` : '';
    const ratio = index === 0 ? '1.00× (baseline)' : `**${contender.vsBaseline.toFixed(2)}×**`;
    return `| ${contender.name} | ${contender.unitsPerSecond.toFixed(0)} | ${ratio}${extra} |`;
  });
  const head = `| | ${unit}/s | vs baseline${perUnit ? ` | ns per ${perUnit.label}` : ''} |`;
  const line = `|---|---|---${perUnit ? '|---' : ''}|`;
  const rounds = Object.entries(result.ratiosByRound).map(([name, ratios]) => `${name}, per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}`);
  return [head, line, ...rows, '', ...rounds.map((text) => `${text}.`)].join('\n');
}
