'use client';
// Live progress from /api/events (Server-Sent Events), and a button that calls the server action.
import { useEffect, useState, useTransition } from 'react';
import { startJob } from './actions';

export default function Progress() {
  const [hub, setHub] = useState('connecting');
  const [jobs, setJobs] = useState({});
  const [steps, setSteps] = useState(5);
  const [pending, startTransition] = useTransition();

  useEffect(() => {
    const source = new EventSource('/api/events');
    source.addEventListener('hub', (e) => setHub(JSON.parse(e.data).state));
    source.addEventListener('job', (e) => {
      const p = JSON.parse(e.data);
      setJobs((all) => ({ ...all, [p.id]: { ...all[p.id], ...p, done: p.topic === 'job:done' } }));
    });
    source.onerror = () => setHub('stream lost, retrying');
    return () => source.close();
  }, []);

  const start = () =>
    startTransition(async () => {
      const { id, steps: n } = await startJob(steps);
      setJobs((all) => (all[id] ? all : { ...all, [id]: { id, steps: n, percent: 0, done: false } }));
    });

  return (
    <section>
      <p>
        hub: <b id="hub-state">{hub}</b>
      </p>
      <label>
        steps <input type="number" min="1" max="100" value={steps} onChange={(e) => setSteps(Number(e.target.value))} />
      </label>{' '}
      <button id="start" onClick={start} disabled={pending || hub !== 'connected'}>
        Start a job
      </button>
      <ul id="jobs">
        {Object.values(jobs).map((j) => (
          <li key={j.id} data-job={j.id} data-percent={j.percent} data-done={String(Boolean(j.done))}>
            <progress max="100" value={j.percent} /> {j.id}: {j.percent}%{j.done ? ' done' : ''}
          </li>
        ))}
      </ul>
    </section>
  );
}
