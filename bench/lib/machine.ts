/** What the benchmarks ran on, for BENCHMARKS.md. */
import {execFile} from 'node:child_process';
import {cpus, totalmem} from 'node:os';
import {promisify} from 'node:util';

const run = promisify(execFile);

async function firstLine(command: string, args: string[], pattern?: RegExp): Promise<string> {
	try {
		const {stdout} = await run(command, args);
		const text = stdout.trim();
		return pattern ? (pattern.exec(text)?.[1] ?? text.split('\n')[0]!) : text.split('\n')[0]!;
	} catch {
		return 'unknown';
	}
}

export async function describeMachine(): Promise<string> {
	const rabbit = await firstLine('rabbitmqctl', ['-q', 'version']);
	const qemu = await firstLine('qemu-system-x86_64', ['--version'], /version ([\d.]+)/);
	const cpu = cpus()[0]?.model ?? 'unknown CPU';
	return `${cpus().length} cores (${cpu}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.versions.node}, RabbitMQ ${rabbit}, QEMU ${qemu} (TCG)`;
}
