// A minimal stand-in for Stash's scene list (ui/v2.5/src/components/Scenes/SceneList.tsx, v0.30):
// a toolbar (.filtered-list-toolbar) holding the patchable "SceneListOperations" component, whose
// props are {items, hasSelection, operations, onEdit, onDelete, onPlay, onCreateNew} and carry no
// ids; its operations render in a dropdown menu. Below, the page's scenes as cards (.scene-card)
// with a selection checkbox and a link to /scenes/<id> under the base path. It is app.js's route
// /scenes. With ?plain=1 the component is not patchable (a Stash before v0.30).
(function () {
  "use strict";

  const React = window.React;
  const { ButtonGroup, Dropdown } = window.ReactBootstrap;
  const h = React.createElement;
  const plain = new URLSearchParams(window.location.search).get("plain") === "1";
  const BASE_PATH = new URL(document.baseURI).pathname;

  const FIND_SCENES = `query FindScenes($filter: FindFilterType) {
    findScenes(filter: $filter) { count scenes { id title } }
  }`;

  async function findScenes() {
    const response = await fetch(new URL("graphql", document.baseURI), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ operationName: "FindScenes", query: FIND_SCENES, variables: { filter: { per_page: 40 } } }),
    });
    const body = await response.json();
    return body.data.findScenes.scenes;
  }

  function Operations(props) {
    const items = props.operations
      .filter((o) => !o.isDisplayed || o.isDisplayed())
      .map((o) => h(Dropdown.Item, { key: o.text, onClick: o.onClick, className: o.className }, o.text));
    return h(
      "div",
      { className: "list-operations" },
      h(
        ButtonGroup,
        null,
        h(
          Dropdown,
          null,
          h(Dropdown.Toggle, { id: "operation-menu", variant: "secondary", className: "list-operations-toggle" }, "More"),
          h(Dropdown.Menu, null, items)
        )
      )
    );
  }
  const SceneListOperations = plain ? Operations : window.TestStash.patchComponent("SceneListOperations", Operations);

  function SceneCard({ scene, selected, onSelect }) {
    return h(
      "div",
      { className: "scene-card card" + (selected ? " card-selected" : "") },
      h("input", {
        type: "checkbox",
        className: "card-check",
        checked: selected,
        onChange: (event) => onSelect(event.target.checked),
      }),
      h("a", { href: BASE_PATH + "scenes/" + scene.id }, scene.title)
    );
  }

  function SceneList() {
    const [scenes, setScenes] = React.useState(null);
    const [selected, setSelected] = React.useState([]);
    React.useEffect(() => {
      findScenes().then(setScenes);
    }, []);
    if (!scenes) return h("div", { className: "loading" }, "Loading...");
    const noop = () => {};
    const operations = [
      { text: "Play", onClick: noop, isDisplayed: () => scenes.length > 0 },
      { text: "Select all", onClick: () => setSelected(scenes.map((s) => s.id)) },
      { text: "Select none", onClick: () => setSelected([]), isDisplayed: () => selected.length > 0 },
    ];
    return h(
      "div",
      { className: "item-list-container scene-list" },
      h(
        "div",
        { className: "filtered-list-toolbar btn-toolbar" },
        h(SceneListOperations, {
          items: scenes.length,
          hasSelection: selected.length > 0,
          operations,
          onEdit: noop,
          onDelete: noop,
          onPlay: noop,
          onCreateNew: noop,
        })
      ),
      h(
        "div",
        { className: "row justify-content-center" },
        scenes.map((scene) =>
          h(SceneCard, {
            key: scene.id,
            scene,
            selected: selected.includes(scene.id),
            onSelect: (on) => setSelected((now) => (on ? now.concat([scene.id]) : now.filter((id) => id !== scene.id))),
          })
        )
      )
    );
  }

  window.TestStash.route(/^\/scenes$/, () => h(SceneList));
})();
