/** Every broken import rule under baseDir's src/ (the project's by default), one line of text each. */
export function checkImports(baseDir?: string): Promise<string[]>;
