/**
 * Child process for benchmarks: runs the compiled server (dist/, as `npm start` does) with the environment given as
 * JSON in argv[2], and prints its ports as one JSON line once it listens. SIGINT or SIGTERM stop it cleanly.
 */
const dist = async <T>(path: string): Promise<T> => (await import(new URL(`../dist/${path}`, import.meta.url).href)) as T;
const { startApp } = await dist<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await dist<typeof import('../src/config/config.js')>('config/config.js');
const { silentLogger } = await dist<typeof import('../src/kernel/logger.js')>('kernel/logger.js');

const app = await startApp(loadConfig(JSON.parse(process.argv[2] ?? '{}') as Record<string, string>), silentLogger);
const stop = () => void app.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
process.stdout.write(`${JSON.stringify({ grpcPort: app.grpc.port, httpPort: app.http.port })}\n`);
