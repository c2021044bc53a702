"""A seeded, deterministic e-commerce dataset: customers, products, orders with lines,
newsletter subscribers and content articles.

Vectorised with NumPy and Polars (no per-row Python), so the same code writes the small
committed demo (a few thousand rows, CSV) and the 1M–10M-row inputs of the benchmarks.
Same seed and arguments → identical files. Dates hang off a fixed ``end_date``, never today.

Deliberately imperfect, so validation has something to catch: about 0.5% of customers
have a malformed email (rows where ``customer_id % 200 == 7``: no "@") and about 0.5% a
malformed phone (``customer_id % 200 == 13``: too short).

    python -m activation_pipeline.demo_data --out data/demo [--customers N --products N ...]
"""

from __future__ import annotations

import argparse
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

END_DATE = date(2026, 11, 1)
FIRST_NAMES = ["Emma", "Liam", "Zoë", "Noah", "Chloé", "Lucas", "Mia", "José", "Léa", "Hugo", "Sofia", "Jonas",
               "Ana", "Oliver", "Inès", "Mateo", "Hannah", "Louis", "Lucía", "Elias", "Grace", "Jürgen", "Amélie", "Pablo"]
LAST_NAMES = ["Smith", "Martin", "Müller", "García", "Jones", "Bernard", "Schmidt", "López", "Brown", "Dubois",
              "Fischer", "Martínez", "Taylor", "Moreau", "Weber", "Sánchez", "Wilson", "Laurent", "Becker", "Pérez"]
DOMAINS = ["example.com", "mail.example.org", "shopper.example.net", "inbox.example.co.uk", "post.example.de"]
STORE_VIEWS = ["en_gb", "fr_fr", "de_de", "es_es"]
STORE_WEIGHTS = [0.45, 0.25, 0.2, 0.1]
PHONE_PREFIX = {"en_gb": "+447700", "fr_fr": "+33612", "de_de": "+491512", "es_es": "+34612"}
BRANDS = ["Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware", "Wingtip"]
ADJECTIVES = ["Classic", "Urban", "Trail", "Essential", "Premium", "Everyday", "Vintage", "Active"]
CATEGORIES = {  # product type -> category path
    "Sneakers": "Women/Shoes/Sneakers", "Boots": "Women/Shoes/Boots", "Loafers": "Men/Shoes/Loafers",
    "Jacket": "Men/Clothing/Jackets", "Parka": "Women/Clothing/Coats", "T-Shirt": "Men/Clothing/T-Shirts",
    "Backpack": "Accessories/Bags", "Cap": "Accessories/Hats", "Scarf": "Accessories/Scarves", "Hoodie": "Kids/Clothing",
}
COLOURS = ["black", "white", "red", "blue", "green", "grey", "navy", "beige", "brown", "pink", "yellow", "orange"]
TAX_RATES = [0.0, 0.055, 0.1, 0.2]
ARTICLE_TOPICS = ["How to choose running shoes", "Caring for leather boots", "Layering for winter", "Packing light",
                  "Sustainable fabrics explained", "The return of the parka", "Five everyday essentials", "Trail season guide"]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _pick(rng: np.random.Generator, values: list, n: int, p: list[float] | None = None) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]


def _timestamps(rng: np.random.Generator, n: int, end: date, days: int) -> pl.Series:
    end_ts = datetime.combine(end, datetime.min.time())
    offsets = rng.integers(0, days * 86_400, size=n)
    return pl.Series((np.datetime64(end_ts, "s") - offsets.astype("timedelta64[s]")).astype("datetime64[ms]"))


def generate_customers(n: int, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    rng = _rng(seed, 1)
    ids = np.arange(1, n + 1, dtype=np.int64)
    first, last = _pick(rng, FIRST_NAMES, n), _pick(rng, LAST_NAMES, n)
    store = _pick(rng, STORE_VIEWS, n, STORE_WEIGHTS)
    created = _timestamps(rng, n, end_date, 730)
    frame = pl.DataFrame({
        "customer_id": ids, "first_name": first.tolist(), "last_name": last.tolist(), "store_view": store.tolist(),
        "domain": _pick(rng, DOMAINS, n).tolist(), "phone_tail": rng.integers(0, 1_000_000, size=n),
        "email_consent": rng.random(n) < 0.7, "sms_consent": rng.random(n) < 0.4,
        "lifetime_value": np.round(rng.lognormal(5.0, 1.0, size=n), 2),
        "created_at": created, "update_lag": rng.integers(0, 90 * 86_400, size=n),
    })
    ascii_name = {"é": "e", "è": "e", "ë": "e", "ü": "u", "í": "i", "á": "a", "ó": "o", "ú": "u", "ñ": "n"}
    local = (pl.concat_str(pl.col("first_name"), pl.lit("."), pl.col("last_name")).str.to_lowercase()
             .str.replace_many(list(ascii_name), list(ascii_name.values())) + "." + pl.col("customer_id").cast(pl.Utf8))
    email = pl.when(pl.col("customer_id") % 200 == 7).then(local + "." + pl.col("domain")).otherwise(local + "@" + pl.col("domain"))
    prefix = pl.col("store_view").replace_strict(PHONE_PREFIX, return_dtype=pl.Utf8)
    phone = pl.when(pl.col("customer_id") % 200 == 13).then(pl.lit("+44 12")).otherwise(prefix + pl.col("phone_tail").cast(pl.Utf8).str.zfill(6))
    updated = pl.min_horizontal(pl.col("created_at") + pl.duration(seconds=pl.col("update_lag")), pl.lit(datetime.combine(end_date, datetime.min.time())))
    return frame.select(
        "customer_id", ("C" + pl.col("customer_id").cast(pl.Utf8).str.zfill(8)).alias("external_id"),
        email.alias("email"), phone.alias("phone"), "first_name", "last_name", "store_view", "email_consent", "sms_consent",
        "lifetime_value", "created_at", pl.max_horizontal(updated, pl.col("created_at")).alias("updated_at"),
    )


def generate_products(n: int, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    rng = _rng(seed, 2)
    ids = np.arange(1, n + 1, dtype=np.int64)
    kinds = list(CATEGORIES)
    kind = _pick(rng, kinds, n)
    colour_id = rng.integers(1, len(COLOURS) + 1, size=n)
    # ~30% are variants of an earlier simple product (parents always have a lower id and no parent)
    is_variant = (rng.random(n) < 0.3) & (ids > 1)
    parent_id = np.where(is_variant, np.maximum(1, (ids * rng.random(n)).astype(np.int64)), 0)
    status = _pick(rng, ["in_stock", "out_of_stock", "discontinued"], n, [0.8, 0.15, 0.05])
    frame = pl.DataFrame({
        "id": ids, "kind": kind.tolist(), "brand": _pick(rng, BRANDS, n).tolist(), "adjective": _pick(rng, ADJECTIVES, n).tolist(),
        "price": np.round(rng.uniform(5, 250, size=n), 2), "tax_rate": _pick(rng, TAX_RATES, n).astype(float),
        "colour_id": colour_id, "parent_id": parent_id, "stock_status": status.tolist(),
        "stock_qty": rng.integers(1, 500, size=n), "updated_at": _timestamps(rng, n, end_date, 90),
    })
    # a variant's parent must itself be top-level: follow one step, drop the link if the parent is a variant
    frame = frame.join(frame.select(pl.col("id").alias("parent_id"), pl.col("parent_id").alias("grand")), on="parent_id", how="left")
    parent = pl.when((pl.col("parent_id") > 0) & (pl.col("grand") == 0)).then(pl.col("parent_id"))
    sku = "SKU-" + pl.col("id").cast(pl.Utf8).str.zfill(7)
    name = pl.col("brand") + " " + pl.col("adjective") + " " + pl.col("kind")
    slug = name.str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "-")
    return frame.sort("id").select(
        sku.alias("sku"), ("SKU-" + parent.cast(pl.Utf8).str.zfill(7)).alias("parent_sku"), name.alias("name"), "price", "tax_rate", "brand",
        "colour_id", pl.col("colour_id").replace_strict(dict(enumerate(COLOURS, 1)), return_dtype=pl.Utf8).alias("colour_label"),
        pl.col("kind").replace_strict(CATEGORIES, return_dtype=pl.Utf8).alias("category_path"),
        ("https://cdn.example.com/img/" + sku + ".jpg").alias("image_url"),
        ("https://shop.example.com/p/" + slug + "-" + sku.str.to_lowercase()).alias("product_url"),
        "stock_status", pl.when(pl.col("stock_status") == "in_stock").then(pl.col("stock_qty")).otherwise(0).alias("stock_qty"),
        "updated_at",
    )


def generate_orders(customers: pl.DataFrame, products: pl.DataFrame, n_orders: int, seed: int = 42,
                    days: int = 90, end_date: date = END_DATE) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = _rng(seed, 3)
    buyer = rng.integers(0, customers.height, size=n_orders)
    # later days are a little busier: day offset drawn from a triangular distribution peaking at end_date
    day_offset = np.floor(rng.triangular(0, days, days, size=n_orders)).astype(np.int64).clip(0, days - 1)
    order_date = np.datetime64(end_date - timedelta(days=days - 1), "D") + day_offset.astype("timedelta64[D]")
    lines_per_order = rng.integers(1, 6, size=n_orders)
    order_ids = ("O" + pl.Series(np.arange(1, n_orders + 1)).cast(pl.Utf8).str.zfill(9))
    order_idx = np.repeat(np.arange(n_orders), lines_per_order)
    line_no = (np.arange(order_idx.size) - np.repeat(np.cumsum(lines_per_order) - lines_per_order, lines_per_order) + 1)
    product_idx = rng.integers(0, products.height, size=order_idx.size)
    lines = pl.DataFrame({
        "order_id": order_ids.gather(order_idx), "line_no": line_no.astype(np.int64),
        "sku": products["sku"].gather(product_idx), "quantity": rng.integers(1, 5, size=order_idx.size),
        "unit_price": products["price"].gather(product_idx),
    }).with_columns((pl.col("quantity") * pl.col("unit_price")).round(2).alias("line_total"))
    totals = lines.group_by("order_id").agg(pl.col("line_total").sum().round(2).alias("total"))
    people = customers.select("customer_id", "email", "store_view")[buyer]
    orders = pl.DataFrame({
        "order_id": order_ids, "customer_id": people["customer_id"], "email": people["email"], "store_view": people["store_view"],
        "order_date": pl.Series(order_date), "seconds": rng.integers(0, 86_400, size=n_orders),
        "status": _pick(rng, ["complete", "canceled", "refunded"], n_orders, [0.9, 0.06, 0.04]).tolist(),
    }).with_columns(
        (pl.col("order_date").cast(pl.Datetime("us")) + pl.duration(seconds=pl.col("seconds"))).alias("created_at"),
        pl.when(pl.col("store_view") == "en_gb").then(pl.lit("GBP")).otherwise(pl.lit("EUR")).alias("currency"),
    ).join(totals, on="order_id", how="left")
    orders = orders.select("order_id", "customer_id", "email", "store_view", "order_date", "created_at", "status", "currency", "total")
    return orders.sort("order_id"), lines.sort("order_id", "line_no")


def generate_newsletter_subscribers(customers: pl.DataFrame, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    rng = _rng(seed, 4)
    members = customers.filter(pl.Series(rng.random(customers.height) < 0.5)).select("customer_id", "email", "store_view")
    outsiders = max(1, members.height // 4)  # ~20% of subscribers are not customers
    strangers = pl.DataFrame({
        "customer_id": pl.Series([None] * outsiders, dtype=pl.Int64),
        "email": [f"reader{i}@news.example.com" for i in range(1, outsiders + 1)],
        "store_view": _pick(rng, STORE_VIEWS, outsiders, STORE_WEIGHTS).tolist(),
    })
    subscribers = pl.concat([members, strangers])
    n = subscribers.height
    return subscribers.with_columns(
        pl.Series("subscriber_id", np.arange(1, n + 1, dtype=np.int64)),
        pl.Series("status", _pick(rng, ["subscribed", "unsubscribed"], n, [0.85, 0.15]).tolist()),
        _timestamps(rng, n, end_date, 365).alias("updated_at"),
    ).select("subscriber_id", "email", "customer_id", "store_view", "status", "updated_at")


def generate_articles(n: int, seed: int = 42, end_date: date = END_DATE) -> pl.DataFrame:
    rng = _rng(seed, 5)
    ids = np.arange(1, n + 1)
    topic = _pick(rng, ARTICLE_TOPICS, n)
    frame = pl.DataFrame({"id": ids, "topic": topic.tolist(), "category": _pick(rng, ["Guides", "News", "Style", "Care"], n).tolist(),
                          "author": (_pick(rng, FIRST_NAMES, n) + " " + _pick(rng, LAST_NAMES, n)).tolist(),
                          "published_at": _timestamps(rng, n, end_date, 365)})
    article_id = "A" + pl.col("id").cast(pl.Utf8).str.zfill(5)
    title = pl.col("topic") + " (part " + (pl.col("id") % 4 + 1).cast(pl.Utf8) + ")"
    return frame.select(
        article_id.alias("article_id"), title.alias("title"),
        ("https://shop.example.com/journal/" + title.str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "-") + "-" + pl.col("id").cast(pl.Utf8)).alias("url"),
        "category", "author", "published_at", ("Our editors on " + pl.col("topic").str.to_lowercase() + ".").alias("summary"),
    )


def write_demo_dataset(out_dir: Path, *, customers: int = 2000, products: int = 500, orders: int = 4000, articles: int = 60,
                       seed: int = 42, fmt: str = "csv") -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    people, catalogue = generate_customers(customers, seed), generate_products(products, seed)
    order_frame, line_frame = generate_orders(people, catalogue, orders, seed)
    tables = {"customers": people, "products": catalogue, "orders": order_frame, "order_lines": line_frame,
              "newsletter_subscribers": generate_newsletter_subscribers(people, seed), "articles": generate_articles(articles, seed)}
    written = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.{fmt}"
        frame.write_parquet(path) if fmt == "parquet" else frame.write_csv(path)
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/demo"))
    for name, default in (("customers", 2000), ("products", 500), ("orders", 4000), ("articles", 60), ("seed", 42)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    args = parser.parse_args(argv)
    files = write_demo_dataset(args.out, customers=args.customers, products=args.products, orders=args.orders,
                               articles=args.articles, seed=args.seed, fmt=args.format)
    for name, path in files.items():
        rows = (pl.scan_parquet(path) if args.format == "parquet" else pl.scan_csv(path)).select(pl.len()).collect().item()
        print(f"{path}  {rows} rows")


if __name__ == "__main__":
    main()
