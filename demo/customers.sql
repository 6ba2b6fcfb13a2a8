-- The demo "customers" database behind connectors/customers.json (SQLite).
-- src/demo/customers.ts builds demo/data/customers.db from this file when the database is
-- missing or older than this file. Money is TEXT with exactly two decimals, never REAL, so
-- amounts stay exact; totals are computed in integer cents and formatted back to text.

PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;

CREATE TABLE customers (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL,
  email       TEXT NOT NULL UNIQUE,
  company     TEXT,
  country     TEXT NOT NULL,               -- ISO 3166-1 alpha-2
  created_at  TEXT NOT NULL                -- ISO-8601, UTC
);

CREATE TABLE orders (
  id           INTEGER PRIMARY KEY,
  customer_id  INTEGER NOT NULL REFERENCES customers (id),
  status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
  currency     TEXT NOT NULL DEFAULT 'EUR',
  ordered_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL
);

CREATE TABLE order_lines (
  id           INTEGER PRIMARY KEY,
  order_id     INTEGER NOT NULL REFERENCES orders (id),
  line_no      INTEGER NOT NULL,
  sku          TEXT NOT NULL,
  description  TEXT NOT NULL,
  quantity     INTEGER NOT NULL CHECK (quantity > 0),
  unit_price   TEXT NOT NULL CHECK (unit_price GLOB '[0-9]*.[0-9][0-9]'),
  UNIQUE (order_id, line_no)
);

CREATE INDEX orders_by_customer ON orders (customer_id, ordered_at);
CREATE INDEX orders_by_status ON orders (status);
CREATE INDEX customers_by_name ON customers (name COLLATE NOCASE);

INSERT INTO customers (id, name, email, company, country, created_at) VALUES
  (1,  'Amelia Hart',        'amelia.hart@northwind.example',     'Northwind Traders',      'GB', '2023-01-09T10:14:00Z'),
  (2,  'Bruno Keller',       'b.keller@alpenstahl.example',       'Alpenstahl AG',          'CH', '2023-01-23T08:02:00Z'),
  (3,  'Chiara Romano',      'chiara.romano@vetreria.example',    'Vetreria Romano',        'IT', '2023-02-14T15:40:00Z'),
  (4,  'Daniel Okafor',      'daniel@okafor-logistics.example',   'Okafor Logistics',       'NG', '2023-03-02T11:27:00Z'),
  (5,  'Elena Petrova',      'elena.petrova@baltika.example',     'Baltika Foods',          'EE', '2023-03-18T09:55:00Z'),
  (6,  'François Dubois',    'f.dubois@atelier-dubois.example',   'Atelier Dubois',         'FR', '2023-04-04T13:08:00Z'),
  (7,  'Grace Liu',          'grace.liu@harborview.example',      'Harborview Clinics',     'US', '2023-04-27T16:31:00Z'),
  (8,  'Hiroshi Tanaka',     'h.tanaka@sakura-denki.example',     'Sakura Denki',           'JP', '2023-05-11T02:45:00Z'),
  (9,  'Isabel Fernández',   'isabel@olivar.example',             'Olivar Cooperativa',     'ES', '2023-06-06T07:19:00Z'),
  (10, 'Jonas Berg',         'jonas.berg@fjordline.example',      'Fjordline Shipping',     'NO', '2023-06-30T12:00:00Z'),
  (11, 'Katarzyna Nowak',    'k.nowak@wisla-tech.example',        'Wisła Tech',             'PL', '2023-07-21T10:42:00Z'),
  (12, 'Liam O''Connor',     'liam.oconnor@shamrock.example',     'Shamrock Analytics',     'IE', '2023-08-08T14:26:00Z'),
  (13, 'Maya Cohen',         'maya@negev-solar.example',          'Negev Solar',            'IL', '2023-08-29T06:50:00Z'),
  (14, 'Nils Andersson',     'nils.andersson@granit.example',     'Granit Bygg',            'SE', '2023-09-15T09:03:00Z'),
  (15, 'Olivia Martins',     'olivia.martins@atlantico.example',  'Atlântico Seguros',      'PT', '2023-10-02T17:12:00Z'),
  (16, 'Pieter de Vries',    'pieter@polder-agri.example',        'Polder Agri',            'NL', '2023-10-24T08:37:00Z'),
  (17, 'Quentin Lambert',    'q.lambert@ardenne-bois.example',    'Ardenne Bois',           'BE', '2023-11-13T11:58:00Z'),
  (18, 'Rosa Schmidt',       'rosa.schmidt@rheinwerk.example',    'Rheinwerk GmbH',         'DE', '2023-12-01T15:05:00Z'),
  (19, 'Samuel Adeyemi',     'samuel.adeyemi@lagos-print.example', NULL,                    'NG', '2024-01-17T10:30:00Z'),
  (20, 'Tereza Horáková',    'tereza@vltava-design.example',      'Vltava Design',          'CZ', '2024-02-05T09:21:00Z');

-- 60 orders (ids 1001..1060), spread over customers, statuses and the first half of 2024.
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT INTO orders (id, customer_id, status, currency, ordered_at, updated_at)
SELECT
  1000 + i,
  ((i * 7) % 20) + 1,
  CASE
    WHEN i % 11 = 0 THEN 'cancelled'
    WHEN i > 52 THEN 'pending'
    WHEN i > 44 THEN 'paid'
    WHEN i > 30 THEN 'shipped'
    ELSE 'delivered'
  END,
  CASE WHEN ((i * 7) % 20) + 1 IN (7, 8) THEN 'USD' ELSE 'EUR' END,
  strftime('%Y-%m-%dT%H:%M:%SZ', '2024-01-02 08:00:00', '+' || (i * 3) || ' days', '+' || ((i * 37) % 600) || ' minutes'),
  strftime('%Y-%m-%dT%H:%M:%SZ', '2024-01-02 08:00:00', '+' || (i * 3 + 2) || ' days')
FROM n;

-- One to three lines per order, drawn deterministically from a small catalogue.
WITH RECURSIVE
  catalogue (k, sku, description, unit_price) AS (
    VALUES
      (0, 'DESK-OAK-160', 'Oak standing desk, 160 cm',       '649.00'),
      (1, 'CHAIR-ERG-01', 'Ergonomic office chair',          '389.90'),
      (2, 'MON-27-4K',    '27" 4K monitor',                  '429.99'),
      (3, 'DOCK-USBC-12', 'USB-C docking station, 12 ports', '189.50'),
      (4, 'KB-MECH-DE',   'Mechanical keyboard, DE layout',  '129.00'),
      (5, 'MOUSE-VERT',   'Vertical mouse',                  '49.95'),
      (6, 'LAMP-LED-A2',  'LED desk lamp',                   '74.20'),
      (7, 'CABLE-HDMI-2', 'HDMI 2.1 cable, 2 m',             '12.49'),
      (8, 'HEADSET-BT',   'Bluetooth headset with ANC',      '219.00'),
      (9, 'WEBCAM-HD',    'Full-HD webcam',                  '89.00')
  ),
  n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60),
  l (i, line_no) AS (
    SELECT i, 1 FROM n
    UNION ALL
    SELECT i, line_no + 1 FROM l WHERE line_no < 1 + (i % 3)
  )
INSERT INTO order_lines (order_id, line_no, sku, description, quantity, unit_price)
SELECT 1000 + l.i, l.line_no, c.sku, c.description, 1 + ((l.i * l.line_no) % 4), c.unit_price
FROM l JOIN catalogue AS c ON c.k = (l.i * 3 + l.line_no * 5) % 10
ORDER BY l.i, l.line_no;
