import { afterEach } from 'vitest';
import { stopServeProcesses } from './serve-process.js';

// A setup file runs for every test file, so these hooks serve each of them (workers keep modules loaded between files).
afterEach(stopServeProcesses);
