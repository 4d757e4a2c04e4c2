// The page's state is plain data; every change goes through update(), which schedules one render.

/** A store around `state`: update(fn) lets fn change the state, then render(state) runs once. */
export function createStore(state, render) {
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    try {
      render(state);
    } catch (err) {
      console.error("render failed", err);
    }
  };
  return {
    state,
    update(change) {
      change(state);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    },
  };
}
