"""The demo dataset generator: deterministic, referentially sound, realistic enough to test with."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from activation_pipeline.demo_data import (
    END_DATE,
    generate_articles,
    generate_customers,
    generate_newsletter_subscribers,
    generate_orders,
    generate_products,
    write_demo_dataset,
)

VALID_EMAIL = r"^[a-z0-9._]+@[a-z0-9-]+(\.[a-z0-9-]+)+$"
VALID_PHONE = r"^\+\d{10,14}$"
SMALL = {"customers": 300, "products": 80, "orders": 400, "articles": 12}


@pytest.fixture(scope="module")
def data():
    customers, products = generate_customers(2000), generate_products(500)
    orders, lines = generate_orders(customers, products, 4000)
    return customers, products, orders, lines, generate_newsletter_subscribers(customers)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path, fmt):
    first = write_demo_dataset(tmp_path / "a", **SMALL, fmt=fmt)
    again = write_demo_dataset(tmp_path / "b", **SMALL, fmt=fmt)
    other = write_demo_dataset(tmp_path / "c", **SMALL, fmt=fmt, seed=7)
    assert sorted(first) == ["articles", "customers", "newsletter_subscribers", "order_lines", "orders", "products"]
    for name, path in first.items():
        assert path == tmp_path / "a" / f"{name}.{fmt}"
        assert path.read_bytes() == again[name].read_bytes(), name
        assert path.read_bytes() != other[name].read_bytes(), name


def test_columns_and_types_are_the_documented_ones(data):
    customers, products, orders, lines, subscribers = data
    assert customers.schema == {
        "customer_id": pl.Int64,
        "external_id": pl.String,
        "email": pl.String,
        "phone": pl.String,
        "first_name": pl.String,
        "last_name": pl.String,
        "store_view": pl.String,
        "email_consent": pl.Boolean,
        "sms_consent": pl.Boolean,
        "lifetime_value": pl.Float64,
        "created_at": pl.Datetime("us"),
        "updated_at": pl.Datetime("us"),
    }
    assert products.columns == [
        "sku",
        "parent_sku",
        "name",
        "price",
        "tax_rate",
        "brand",
        "colour_id",
        "colour_label",
        "category_path",
        "image_url",
        "product_url",
        "stock_status",
        "stock_qty",
        "updated_at",
    ]
    assert orders.columns == ["order_id", "customer_id", "email", "store_view", "order_date", "created_at", "status", "currency", "total"]
    assert orders.schema["order_date"] == pl.Date
    assert lines.columns == ["order_id", "line_no", "sku", "quantity", "unit_price", "line_total"]
    assert subscribers.columns == ["subscriber_id", "email", "customer_id", "store_view", "status", "updated_at"]
    articles = generate_articles(60)
    assert articles.columns == ["article_id", "title", "url", "category", "author", "published_at", "summary"]
    assert articles["article_id"].str.contains(r"^A\d{5}$").all() and articles["article_id"].is_unique().all()
    assert articles["summary"].str.ends_with(".").all() and articles["url"].str.starts_with("https://").all()


def test_customers_look_real(data):
    customers = data[0]
    assert customers["customer_id"].to_list() == list(range(1, 2001))
    assert customers["external_id"].str.contains(r"^C\d{8}$").all() and customers["external_id"][0] == "C00000001"
    assert customers["email"].is_unique().all() and (customers["email"] == customers["email"].str.to_lowercase()).all()
    assert customers["email"].str.extract(r"@(.+)$").drop_nulls().n_unique() >= 5
    names = set(customers["first_name"]) | set(customers["last_name"])
    assert {"Zoë", "Müller", "José"} <= names
    shares = customers["store_view"].value_counts(normalize=True).sort("store_view")
    assert set(shares["store_view"]) == {"en_gb", "fr_fr", "de_de", "es_es"}
    assert shares.filter(pl.col("store_view") == "en_gb")["proportion"].item() > 0.35
    assert shares.filter(pl.col("store_view") == "es_es")["proportion"].item() < 0.15
    ok = customers.filter(pl.col("phone").str.contains(VALID_PHONE))
    country = {"en_gb": "+44", "fr_fr": "+33", "de_de": "+49", "es_es": "+34"}
    assert (ok["phone"].str.slice(0, 3) == ok["store_view"].replace_strict(country)).all()
    ltv = customers["lifetime_value"]
    assert (ltv > 0).all() and ((ltv * 100).round(6) % 1 == 0).all() and ltv.mean() > 1.3 * ltv.median()  # skewed
    end = datetime.combine(END_DATE + timedelta(days=1), datetime.min.time())
    assert customers["created_at"].min() >= end - timedelta(days=730) and customers["created_at"].max() < end
    assert customers["updated_at"].min() >= end - timedelta(days=90) and customers["updated_at"].max() < end
    assert (customers["updated_at"] >= customers["created_at"]).all()
    assert 0.6 < customers["email_consent"].mean() < 0.8


def test_a_documented_share_of_contacts_is_malformed(data):
    customers = data[0]
    bad_emails = customers.filter(~pl.col("email").str.contains(VALID_EMAIL))
    bad_phones = customers.filter(~pl.col("phone").str.contains(VALID_PHONE))
    assert bad_emails["customer_id"].to_list() == [i for i in range(1, 2001) if i % 200 == 7]  # 0.5%
    assert bad_phones["customer_id"].to_list() == [i for i in range(1, 2001) if i % 200 == 13]  # 0.5%
    kinds = bad_emails["email"].to_list()
    assert "@" not in kinds[0] and kinds[1].endswith("@") and " @" in kinds[2]  # (id // 200) % 3 == 0, 1, 2
    assert len(bad_phones["phone"][0]) < 10 and bad_phones["phone"][1].count("O") == 2  # too short; letters


def test_products_and_their_variants(data):
    products = data[1]
    assert products["sku"].str.contains(r"^SKU-\d{7}$").all() and products["sku"].is_unique().all()
    variants = products.filter(pl.col("parent_sku").is_not_null())
    top_level = products.filter(pl.col("parent_sku").is_null())
    assert 0.25 < variants.height / products.height < 0.35
    assert set(variants["parent_sku"]) <= set(top_level["sku"])
    family = variants.join(products, left_on="parent_sku", right_on="sku", suffix="_parent")
    assert (family["name"] == family["name_parent"]).all() and (family["price"] == family["price_parent"]).all()
    assert (products["price"] > 0).all() and ((products["price"] * 100).round(6) % 1 == 0).all()
    assert set(products["tax_rate"]) == {0.0, 0.055, 0.1, 0.2}
    assert products.group_by("colour_id").agg(pl.col("colour_label").n_unique())["colour_label"].max() == 1
    assert products.group_by("colour_label").agg(pl.col("colour_id").n_unique())["colour_id"].max() == 1
    assert set(products["colour_id"]) <= set(range(1, 13)) and products.filter(pl.col("colour_id") == 1)["colour_label"][0] == "black"
    depth = products["category_path"].str.count_matches("/") + 1
    assert depth.min() == 2 and depth.max() == 3
    assert (
        products["name"]
        == products["brand"] + " " + products["name"].str.split(" ").list.get(1) + " " + products["name"].str.split(" ").list.slice(2).list.join(" ")
    ).all()
    assert (products["image_url"] == "https://cdn.example.com/img/" + products["sku"] + ".jpg").all()
    assert products["product_url"].str.contains(r"^https://shop\.example\.com/p/[a-z0-9-]+-sku-\d{7}$").all()
    assert (products["product_url"].str.slice(-11) == products["sku"].str.to_lowercase()).all()
    shares = products["stock_status"].value_counts(normalize=True)
    share = dict(zip(shares["stock_status"], shares["proportion"], strict=True))
    assert 0.72 < share["in_stock"] < 0.88 and 0.09 < share["out_of_stock"] < 0.21 and 0.01 < share["discontinued"] < 0.1
    assert products.filter((pl.col("stock_status") != "in_stock") & (pl.col("stock_qty") != 0)).is_empty()
    assert products.filter(pl.col("stock_status") == "in_stock")["stock_qty"].min() > 0


def test_orders_are_consistent_with_customers_products_and_lines(data):
    customers, products, orders, lines, _ = data
    assert orders["order_id"].str.contains(r"^O\d{9}$").all() and orders["order_id"].is_unique().all()
    buyers = orders.join(customers, on="customer_id", how="left", suffix="_customer")
    assert buyers["email_customer"].null_count() == 0
    assert (buyers["email"] == buyers["email_customer"]).all() and (buyers["store_view"] == buyers["store_view_customer"]).all()
    assert (buyers["created_at"] >= buyers["created_at_customer"]).all()  # nobody orders before signing up
    assert ((orders["currency"] == "GBP") == (orders["store_view"] == "en_gb")).all() and set(orders["currency"]) == {"GBP", "EUR"}
    assert set(orders["status"]) == {"complete", "canceled", "refunded"} and (orders["status"] == "complete").mean() > 0.8
    assert orders["order_date"].min() >= END_DATE - timedelta(days=89) and orders["order_date"].max() <= END_DATE
    assert (orders["created_at"].dt.date() == orders["order_date"]).all() and orders["created_at"].is_sorted()
    by_day = orders.group_by("order_date").len()
    recent = by_day.filter(pl.col("order_date") > END_DATE - timedelta(days=30))["len"].mean()
    assert recent > by_day.filter(pl.col("order_date") <= END_DATE - timedelta(days=60))["len"].mean()
    assert set(lines["order_id"]) == set(orders["order_id"]) and set(lines["sku"]) <= set(products["sku"])
    counts = lines.group_by("order_id").agg(pl.len().alias("k"), pl.col("line_no").sort().alias("nos"))
    assert counts["k"].min() == 1 and counts["k"].max() == 5
    assert all(nos.to_list() == list(range(1, len(nos) + 1)) for nos in counts["nos"])
    assert lines["quantity"].min() == 1 and lines["quantity"].max() == 4
    priced = lines.join(products, on="sku")
    assert (priced["unit_price"] == priced["price"]).all()
    assert ((lines["line_total"] - lines["quantity"] * lines["unit_price"]).abs() < 1e-9).all()
    sums = lines.group_by("order_id").agg(pl.col("line_total").sum().round(2).alias("sum")).join(orders, on="order_id")
    assert sums.height == orders.height and (sums["sum"] == sums["total"]).all()


def test_newsletter_subscribers(data):
    customers, subscribers = data[0], data[4]
    assert subscribers["subscriber_id"].to_list() == list(range(1, subscribers.height + 1))
    assert subscribers["email"].is_unique().all()
    assert 0.17 < subscribers["customer_id"].null_count() / subscribers.height < 0.23
    members = subscribers.drop_nulls("customer_id").join(customers, on="customer_id", suffix="_customer")
    assert members.height == subscribers["customer_id"].count()
    assert (members["email"] == members["email_customer"]).all() and (members["store_view"] == members["store_view_customer"]).all()
    assert ((members["status"] == "subscribed") == members["email_consent"]).all()
    outsiders = subscribers.filter(pl.col("customer_id").is_null())
    assert outsiders["email"].str.contains(VALID_EMAIL).all() and not set(outsiders["email"]) & set(customers["email"])
    assert set(subscribers["status"]) == {"subscribed", "unsubscribed"}


def test_end_date_anchors_every_date():
    end = date(2025, 3, 31)
    customers, products = generate_customers(200, end_date=end), generate_products(50, end_date=end)
    orders, _ = generate_orders(customers, products, 300, days=30, end_date=end)
    assert orders["order_date"].min() >= end - timedelta(days=29) and orders["order_date"].max() <= end
    assert customers["updated_at"].max() < datetime(2025, 4, 1) and products["updated_at"].max() < datetime(2025, 4, 1)
    assert generate_articles(10, end_date=end)["published_at"].is_sorted()


def test_the_cli_writes_every_table_and_prints_counts(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "activation_pipeline.demo_data",
            "--out",
            str(tmp_path),
            "--customers",
            "50",
            "--products",
            "20",
            "--orders",
            "30",
            "--articles",
            "5",
            "--format",
            "parquet",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("customers", "products", "orders", "order_lines", "newsletter_subscribers", "articles"):
        path = tmp_path / f"{name}.parquet"
        assert path.exists() and f"{path}  {pl.read_parquet(path).height} rows" in out
    assert f"{tmp_path / 'customers.parquet'}  50 rows" in out and f"{tmp_path / 'articles.parquet'}  5 rows" in out
    assert len(out.strip().splitlines()) == 6


def test_csv_reads_back_with_dates_parsed(tmp_path):
    paths = write_demo_dataset(tmp_path, **SMALL)
    orders = pl.read_csv(paths["orders"], try_parse_dates=True)
    assert orders.schema["order_date"] == pl.Date and orders.schema["created_at"] == pl.Datetime("us")
    assert pl.read_csv(paths["customers"]).height == SMALL["customers"]


def test_a_million_products_generate_with_unique_skus():
    products = generate_products(1_000_000)
    assert products.height == 1_000_000 and products["sku"].n_unique() == 1_000_000
