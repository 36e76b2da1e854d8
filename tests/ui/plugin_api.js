// The test page's window.PluginApi, shaped like Stash's (ui/v2.5/src/pluginApi.tsx and patch.tsx):
// React, ReactDOM and react-bootstrap as libraries.Bootstrap; patch.before/instead/after keyed by
// component name; patched container components registered in PluginApi.components. Only what a
// scene page plugin touches is here.
//
// Patch semantics as in Stash: "before" functions get the component's arguments and return new
// ones; "instead" functions get the arguments plus the next function in the chain (the original
// last) and their result replaces the original's; "after" functions get the arguments plus the
// result and return the new result.
//
// PluginApi.Event as in Stash (src/hooks/event.ts): an EventTarget whose dispatch(event, id, data)
// sends a CustomEvent "stash:<event>[:<id>]" with detail {event, id?, data?}; app.js sends
// "stash:location" as Stash's App.tsx does. With ?noevents=1 in the URL there is no Event, as in a
// Stash before it.
(function () {
  "use strict";

  const React = window.React;
  const beforeFns = {};
  const insteadFns = {};
  const afterFns = {};
  const components = {};

  function register(table) {
    return function (name, fn) {
      (table[name] = table[name] || []).push(fn);
    };
  }

  function runInstead(fns, target, thisArg, args) {
    let index = 0;
    function next() {
      if (index >= fns.length) return target;
      const fn = fns[index++];
      const following = next();
      return function () {
        return fn.apply(this, Array.prototype.slice.call(arguments).concat([following]));
      };
    }
    return next().apply(thisArg, args);
  }

  // A function whose calls go through the registered patches; React calls a function component
  // with (props, secondArg), so patches see the same.
  function patchFunction(name, fn) {
    return new Proxy(fn, {
      apply(target, thisArg, args) {
        for (const before of beforeFns[name] || []) args = before.apply(thisArg, args);
        let result = insteadFns[name]
          ? runInstead(insteadFns[name], target, thisArg, args)
          : target.apply(thisArg, args);
        for (const after of afterFns[name] || []) result = after.apply(thisArg, args.concat([result]));
        return result;
      },
    });
  }

  // PatchComponent: the component's calls go through the patches; it is listed in components.
  function patchComponent(name, fn) {
    const patched = patchFunction(name, fn);
    components[name] = patched;
    return patched;
  }

  function patchContainerComponent(name) {
    const container = patchFunction(name, function (props) {
      return React.createElement(React.Fragment, null, props.children);
    });
    components[name] = container;
    return container;
  }

  class StashEvent extends EventTarget {
    dispatch(event, id, data) {
      const detail = Object.assign({ event }, id ? { id } : {}, data ? { data } : {});
      this.dispatchEvent(new CustomEvent("stash:" + event + (id ? ":" + id : ""), { detail }));
    }
  }
  const noEvents = new URLSearchParams(window.location.search).get("noevents") === "1";

  window.PluginApi = {
    React,
    ReactDOM: window.ReactDOM,
    GQL: {},
    libraries: { Bootstrap: window.ReactBootstrap },
    components,
    utils: { StashService: {} },
    hooks: {
      useToast() {
        return { success() {}, error() {} };
      },
    },
    patch: { before: register(beforeFns), instead: register(insteadFns), after: register(afterFns) },
    register: {
      route() {},
      component(name, fn) {
        components[name] = fn;
        return fn;
      },
    },
  };
  if (!noEvents) window.PluginApi.Event = new StashEvent();

  // For the fake scene page (Scene.tsx does the same with src/patch).
  window.TestStash = { patchComponent, patchContainerComponent };
})();
