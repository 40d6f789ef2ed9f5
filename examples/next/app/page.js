import Progress from './progress';

export default function Home() {
  return (
    <main>
      <h1>Switchboard + Next.js</h1>
      <p>
        The button runs a server action that emits <code>job:start</code> on the bus; the hub&apos;s process runs the
        job and emits <code>job:progress</code>, which <code>/api/events</code> streams to this page.
      </p>
      <Progress />
    </main>
  );
}
