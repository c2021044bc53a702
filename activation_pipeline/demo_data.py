"""A seeded, deterministic e-commerce dataset: customers, products, orders with their lines,
newsletter subscribers and content articles.

Vectorised with NumPy and Polars (no per-row Python), so the same code writes the small
committed demo (a few thousand rows, CSV) and the 1M-10M-row inputs of the benchmarks.
Same seed and arguments -> identical files. Every date hangs off a fixed ``end_date``
(default 2026-11-01), never today. Low-cardinality text columns are gathered from small
lists, so their rows share one copy of each string.

Deliberately imperfect, so validation has something to catch (exactly 0.5% each):

* malformed email where ``customer_id % 200 == 7``, by ``(customer_id // 200) % 3``:
  0 -> no "@" (``zoe.smith.7example.com``), 1 -> no domain (``zoe.smith.207@``),
  2 -> a space before the "@" (``zoe.smith.407 @example.com``);
* malformed phone where ``customer_id % 200 == 13``, by ``(customer_id // 200) % 2``:
  0 -> too short (``+447700``), 1 -> letter O for zero (``+4477OO12345678``).

    python -m activation_pipeline.demo_data --out data/demo [--customers N --products N
        --orders N --articles N --seed S --format csv|parquet]
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from activation_pipeline.demo_columns import concat, epoch_micros, gather, moments, table_rng, timestamps, weighted_choice, zero_padded
from activation_pipeline.demo_vocabulary import (
    ADJECTIVES,
    ARTICLE_TEMPLATES,
    AUTHORS,
    BRANDS,
    CATALOGUE,
    COLOUR_WEIGHTS,
    COLOURS,
    DOMAINS,
    EMAIL_ENDS,
    EMAIL_LOCALS,
    FIRST_NAMES,
    HOUR_WEIGHTS,
    LAST_ASCII,
    LAST_NAMES,
    NAMES_PER_STORE,
    ORDER_STATUSES,
    PHONES,
    PRODUCT_NAMES,
    PRODUCT_URLS,
    STOCK_STATUSES,
    STORE_VIEWS,
    STORE_WEIGHTS,
    SUBJECTS,
    WEEKDAY_WEIGHTS,
    slug,
)

END_DATE = date(2026, 11, 1)


def _name_indices(rng: np.random.Generator, store: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First/last name indices (uint8): 85% from the store view's own country, the rest from anywhere."""
    n = store.size
    country = np.where(rng.random(n) < 0.85, store, rng.integers(0, len(STORE_VIEWS), size=n, dtype=np.uint8))
    first = country * NAMES_PER_STORE + rng.integers(0, NAMES_PER_STORE, size=n, dtype=np.uint8)
    return first, country * NAMES_PER_STORE + rng.integers(0, NAMES_PER_STORE, size=n, dtype=np.uint8)


def generate_customers(n: int, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    """``n`` customers, ``customer_id`` 1..n, in the columns documented in the module.

    Names, phone country and email domain follow the store view (en_gb 45%, fr_fr 25%,
    de_de 20%, es_es 10%); emails are ``first[.|_|]last.<id>@domain``, so unique;
    ``lifetime_value`` is lognormal; ``created_at`` falls in the 2 years and ``updated_at``
    in the 90 days up to ``end_date``, never before ``created_at``. Malformed emails and
    phones (0.5% each) sit at the positions listed in the module docstring.
    """
    rng = table_rng(seed, 1)
    ids = np.arange(1, n + 1, dtype=np.int64)
    id_text = pl.Series(ids).cast(pl.String)
    store = weighted_choice(rng, STORE_WEIGHTS, n)
    first, last = _name_indices(rng, store)
    # email = <first><sep><last> "." <id> <"@" or a fault><domain>; both ends gathered from small combination lists
    local = (first.astype(np.uint16) * 3 + weighted_choice(rng, [6, 3, 1], n)) * len(LAST_ASCII) + last
    domain = np.where(rng.random(n) < 0.35, 3 + store, rng.integers(0, 3, size=n, dtype=np.uint8))
    email_fault = np.where(ids % 200 == 7, 1 + (ids // 200) % 3, 0).astype(np.uint8)  # 1 no "@", 2 no domain, 3 space
    domain[email_fault == 2] = len(DOMAINS) - 1
    end = gather(EMAIL_ENDS, email_fault * len(DOMAINS) + domain)
    email = concat(gather(EMAIL_LOCALS, local), ".", id_text, end, name="email")
    del local, domain, email_fault, end
    phone_fault = np.where(ids % 200 == 13, 1 + (ids // 200) % 2, 0).astype(np.uint8)  # 1 too short, 2 letters
    tail = zero_padded(rng.integers(0, 100_000_000, size=n), 8)
    phone = concat(
        gather(sum(PHONES, []), store * 3 + phone_fault),
        pl.when(pl.lit(pl.Series(phone_fault == 1))).then(None).otherwise(pl.lit(tail)),
        name="phone",
    )
    del tail, phone_fault
    email_consent = rng.random(n) < 0.7
    sms_consent = rng.random(n) < np.where(email_consent, 0.45, 0.1)
    created = moments(rng, n, end_date, 730)
    return pl.DataFrame(
        [
            pl.Series("customer_id", ids),
            concat("C", zero_padded(ids, 8), name="external_id"),
            email,
            phone,
            gather(FIRST_NAMES, first, "first_name"),
            gather(LAST_NAMES, last, "last_name"),
            gather(STORE_VIEWS, store, "store_view"),
            pl.Series("email_consent", email_consent),
            pl.Series("sms_consent", sms_consent),
            pl.Series("lifetime_value", np.round(rng.lognormal(5.0, 1.0, size=n), 2)),
            timestamps(created, "created_at"),
            timestamps(np.maximum(created, moments(rng, n, end_date, 90)), "updated_at"),
        ]
    )


def generate_products(n: int, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    """``n`` products, ``sku`` SKU-0000001.. in catalogue order.

    About 30% are variants: a variant directly follows its parent (a top-level product,
    ``parent_sku`` null) and shares its name, brand, category, price and tax rate, with
    its own colour. Prices are lognormal around a per-category price and end in .99, .95,
    .50 or .00; ``tax_rate`` follows the category (0.0 kids, 0.055 books, 0.1 home, 0.2
    otherwise). ``stock_status`` is in_stock ~80%, out_of_stock ~15%, discontinued ~5%;
    ``stock_qty`` is 0 unless in stock. ``updated_at`` falls in the 90 days up to ``end_date``.
    """
    rng = table_rng(seed, 2)
    position = np.arange(n, dtype=np.int64)
    top_level = rng.random(n) >= 0.3
    top_level[:1] = True
    parent = np.maximum.accumulate(np.where(top_level, position, 0))  # the last top-level product at or before
    kind = weighted_choice(rng, [c[4] for c in CATALOGUE], n)[parent]
    combo = (kind.astype(np.int32) * len(BRANDS) + rng.integers(0, len(BRANDS), size=n)[parent]) * len(ADJECTIVES)
    combo += rng.integers(0, len(ADJECTIVES), size=n)[parent]
    colour = weighted_choice(rng, COLOUR_WEIGHTS, n)
    base = np.array([c[2] for c in CATALOGUE], dtype=np.float64)[kind]
    cents = np.array([0.99, 0.95, 0.5, 0.0])[weighted_choice(rng, [6, 2, 1, 1], n)]
    price = np.round(np.maximum(np.floor(base * rng.lognormal(0.0, 0.35, size=n)), 1.0) + cents, 2)[parent]
    del base, cents
    status = weighted_choice(rng, [80, 15, 5], n)
    stock_qty = np.where(status == 0, np.minimum(rng.geometric(1 / 60, size=n), 999), 0)
    updated = moments(rng, n, end_date, 90)
    digits = zero_padded(position + 1, 7)
    del position
    sku = concat("SKU-", digits, name="sku")
    parent_sku = pl.select(pl.when(pl.lit(pl.Series(top_level))).then(None).otherwise(pl.lit(sku.gather(parent))))
    del top_level, parent
    image_url = concat("https://cdn.example.com/img/", sku, ".jpg", name="image_url")
    product_url = concat(gather(PRODUCT_URLS, combo), digits, name="product_url")
    del digits
    return pl.DataFrame(
        [
            sku,
            parent_sku.to_series().alias("parent_sku"),
            gather(PRODUCT_NAMES, combo, "name"),
            pl.Series("price", price),
            gather([c[3] for c in CATALOGUE], kind, "tax_rate"),
            gather(BRANDS, combo // len(ADJECTIVES) % len(BRANDS), "brand"),
            pl.Series("colour_id", colour.astype(np.int64) + 1),
            gather(COLOURS, colour, "colour_label"),
            gather([c[0] for c in CATALOGUE], kind, "category_path"),
            image_url,
            product_url,
            gather(STOCK_STATUSES, status, "stock_status"),
            pl.Series("stock_qty", stock_qty.astype(np.int64, copy=False)),
            timestamps(updated, "updated_at"),
        ]
    )


def generate_orders(
    customers: pl.DataFrame, products: pl.DataFrame, n_orders: int, seed: int = 42, days: int = 90, end_date: date = END_DATE
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n_orders`` orders over the ``days`` days ending with ``end_date``, and their lines.

    Recent days, weekends and evenings are busier; customers with a higher
    ``lifetime_value`` order more often, and never before their ``created_at`` (when those
    columns are there); some products sell far more than others, discontinued ones rarely.
    ``order_id`` follows ``created_at``. Each order has 1-5 lines of quantity 1-4 at the
    product's price; ``total`` is the sum of ``line_total`` (summed in cents, exact).
    Returns ``(orders, order_lines)``.
    """
    if n_orders and (customers.is_empty() or products.is_empty()):
        raise ValueError("orders need at least one customer and one product")
    rng = table_rng(seed, 3)
    first_day = end_date - timedelta(days=days - 1)
    weekday = (first_day.weekday() + np.arange(days)) % 7
    day = weighted_choice(rng, np.linspace(1.0, 1.4, days) * np.array(WEEKDAY_WEIGHTS)[weekday], n_orders).astype(np.int64)
    hour = weighted_choice(rng, HOUR_WEIGHTS, n_orders).astype(np.int64)
    moment = epoch_micros(first_day) + ((day * 24 + hour) * 3600 + rng.integers(0, 3600, size=n_orders)) * 1_000_000
    del day, hour
    weights = np.ones(customers.height)
    if "lifetime_value" in customers.columns:
        weights = customers["lifetime_value"].fill_null(0).clip(0).to_numpy() + 20.0
    buyer = weighted_choice(rng, weights, n_orders)
    if isinstance(customers.schema.get("created_at"), pl.Datetime):
        joined = customers["created_at"].dt.epoch("us").fill_null(0).to_numpy()[buyer]
        moment = np.minimum(np.maximum(moment, joined), epoch_micros(end_date + timedelta(days=1)) - 1_000_000)
    in_time_order = pl.DataFrame({"moment": moment, "buyer": buyer}).sort("moment", maintain_order=True)  # stable
    moment, buyer = in_time_order["moment"].to_numpy(), in_time_order["buyer"].to_numpy()
    del in_time_order
    status = weighted_choice(rng, [90, 6, 4], n_orders)
    line_count = weighted_choice(rng, [40, 25, 15, 12, 8], n_orders).astype(np.int64) + 1
    starts = np.cumsum(line_count) - line_count
    line_order = np.repeat(np.arange(n_orders, dtype=np.int64), line_count)
    line_no = np.arange(line_order.size, dtype=np.int64) - starts[line_order] + 1
    popularity = rng.lognormal(0.0, 1.0, size=products.height)
    if "stock_status" in products.columns:
        popularity *= np.where(products["stock_status"].to_numpy() == "discontinued", 0.2, 1.0)
    product = weighted_choice(rng, popularity, line_order.size)
    quantity = weighted_choice(rng, [70, 20, 7, 3], line_order.size).astype(np.int64) + 1
    unit_cents = np.round(products["price"].to_numpy() * 100).astype(np.int64)[product]
    line_cents = quantity * unit_cents
    total_cents = np.add.reduceat(line_cents, starts) if n_orders else np.zeros(0, dtype=np.int64)
    order_id = concat("O", zero_padded(np.arange(1, n_orders + 1), 9), name="order_id")
    people = customers.select("customer_id", "email", "store_view")[buyer]
    created = timestamps(moment, "created_at")
    orders = pl.DataFrame(
        [
            order_id,
            people["customer_id"],
            people["email"],
            people["store_view"],
            created.dt.date().alias("order_date"),
            created,
            gather(ORDER_STATUSES, status, "status"),
        ]
    ).with_columns(
        pl.when(pl.col("store_view") == "en_gb").then(pl.lit("GBP")).otherwise(pl.lit("EUR")).alias("currency"),
        pl.Series("total", total_cents / 100),
    )
    del people, created, moment, buyer
    lines = pl.DataFrame(
        [
            order_id.gather(line_order).alias("order_id"),
            pl.Series("line_no", line_no),
            products["sku"].gather(product),
            pl.Series("quantity", quantity),
            pl.Series("unit_price", unit_cents / 100),
            pl.Series("line_total", line_cents / 100),
        ]
    )
    return orders, lines


def generate_newsletter_subscribers(customers: pl.DataFrame, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    """Newsletter subscribers: customers (60% of those with ``email_consent``, 20% of the
    others; subscribed exactly when they consent) and ~20% non-customers with their own
    emails (``first.last.n<k>@domain``, ``customer_id`` null, 85% subscribed), shuffled,
    ``subscriber_id`` 1..N. ``updated_at`` falls in the 365 days up to ``end_date``.
    """
    rng = table_rng(seed, 4)
    consent = np.ones(customers.height, dtype=bool)
    if "email_consent" in customers.columns:
        consent = customers["email_consent"].fill_null(False).to_numpy()
    joined = rng.random(customers.height) < np.where(consent, 0.6, 0.2)
    members = customers.filter(pl.Series(joined)).select("email", "customer_id", "store_view", pl.Series("subscribed", consent[joined]))
    k = round(members.height / 4)  # outsiders are 1/5 of all subscribers
    store = weighted_choice(rng, STORE_WEIGHTS, k)
    first, last = _name_indices(rng, store)
    domain = np.where(rng.random(k) < 0.35, 3 + store, rng.integers(0, 3, size=k, dtype=np.uint8))
    email = concat(
        gather(EMAIL_LOCALS, first.astype(np.uint16) * 3 * len(LAST_ASCII) + last),
        ".n",
        pl.Series(np.arange(1, k + 1)).cast(pl.String),
        gather(EMAIL_ENDS, domain),
        name="email",
    )
    outsiders = pl.DataFrame(
        [
            email,
            pl.repeat(None, k, dtype=pl.Int64, eager=True).alias("customer_id"),
            gather(STORE_VIEWS, store, "store_view"),
            pl.Series("subscribed", rng.random(k) < 0.85),
        ]
    )
    subscribers = pl.concat([members, outsiders.cast(members.schema)])
    subscribers = subscribers[rng.permutation(subscribers.height)]
    return subscribers.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("subscriber_id"),
        "email",
        "customer_id",
        "store_view",
        pl.when("subscribed").then(pl.lit("subscribed")).otherwise(pl.lit("unsubscribed")).alias("status"),
        timestamps(moments(rng, subscribers.height, end_date, 365), "updated_at"),
    )


def generate_articles(n: int, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    """``n`` content articles, ``article_id`` A00001.. in publication order over the year up
    to ``end_date``; title, category and one-sentence summary from templates about product
    subjects; a handful of authors; URL ``https://shop.example.com/journal/<slug>-<id>``.
    """
    rng = table_rng(seed, 5)
    combos = [(t, s) for t in ARTICLE_TEMPLATES for s in SUBJECTS]
    titles = [t[1].format(s) for t, s in combos]
    combo = rng.integers(0, len(combos), size=n)
    published = np.sort(moments(rng, n, end_date, 365))
    article_id = concat("A", zero_padded(np.arange(1, n + 1), 5), name="article_id")
    url = concat(gather([f"https://shop.example.com/journal/{slug(t)}-" for t in titles], combo), article_id.str.to_lowercase(), name="url")
    return pl.DataFrame(
        [
            article_id,
            gather(titles, combo, "title"),
            url,
            gather([t[0] for t, _ in combos], combo, "category"),
            gather(AUTHORS, rng.integers(0, len(AUTHORS), size=n), "author"),
            timestamps(published, "published_at"),
            gather([t[2].format(s) for t, s in combos], combo, "summary"),
        ]
    )


def write_demo_dataset(
    out_dir: Path, *, customers: int = 2000, products: int = 500, orders: int = 4000, articles: int = 60, seed: int = 42, fmt: str = "csv"
) -> dict[str, Path]:
    """Generate every table and write ``<table>.<fmt>`` (csv or parquet) into ``out_dir``.

    Returns table name -> path, for customers, products, orders, order_lines,
    newsletter_subscribers and articles. CSV timestamps are written ``YYYY-MM-DD HH:MM:SS``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', not {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    people, catalogue = generate_customers(customers, seed), generate_products(products, seed)
    order_frame, line_frame = generate_orders(people, catalogue, orders, seed)
    tables = {
        "customers": people,
        "products": catalogue,
        "orders": order_frame,
        "order_lines": line_frame,
        "newsletter_subscribers": generate_newsletter_subscribers(people, seed),
        "articles": generate_articles(articles, seed),
    }
    written = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.write_parquet(path)
        else:
            frame.write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S")
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/demo"))
    for name, default in (("customers", 2000), ("products", 500), ("orders", 4000), ("articles", 60), ("seed", 42)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    args = parser.parse_args(argv)
    files = write_demo_dataset(
        args.out, customers=args.customers, products=args.products, orders=args.orders, articles=args.articles, seed=args.seed, fmt=args.format
    )
    for path in files.values():
        rows = (pl.scan_parquet(path) if args.format == "parquet" else pl.scan_csv(path)).select(pl.len()).collect().item()
        print(f"{path}  {rows} rows")


if __name__ == "__main__":
    main()
