// Symbol search in the header: type a ticker, press Enter, the quote panel follows it.
//
// Any well-formed ticker is accepted (the quote panel subscribes to it whether or not it is
// on a board); the suggestions are the symbols the boards currently show.

const TICKER = /^[A-Z][A-Z0-9.-]{0,9}$/;

export function normalSymbol(text) {
  const symbol = String(text || "").trim().toUpperCase();
  return TICKER.test(symbol) ? symbol : null;
}

export class SymbolSearch {
  // form: <form> with an <input name="symbol" list=...>; known() -> iterable of symbols
  constructor(form, { onSymbol, known }) {
    this.form = form;
    this.input = form.elements.symbol;
    this.list = document.getElementById(this.input.getAttribute("list"));
    this.known = known;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const symbol = normalSymbol(this.input.value);
      this.input.setCustomValidity(symbol ? "" : "Type a ticker such as AAPL");
      if (!symbol) {
        this.input.reportValidity();
        return;
      }
      this.input.value = "";
      this.input.blur();
      onSymbol(symbol);
    });
    this.input.addEventListener("input", () => this.input.setCustomValidity(""));
    this.input.addEventListener("focus", () => this.suggest());
  }

  suggest() {
    if (!this.list) return;
    const symbols = [...new Set(this.known())].sort();
    this.list.textContent = "";
    for (const symbol of symbols) {
      const option = document.createElement("option");
      option.value = symbol;
      this.list.appendChild(option);
    }
  }
}
