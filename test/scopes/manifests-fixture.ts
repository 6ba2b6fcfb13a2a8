/** The manifests the policy suites share; each suite writes them into its own temp directory. */
export const SUPPORT = {
  name: "support-agent",
  description: "Front-line support: read customers and their orders.",
  tools: [
    "customers__find_customer",
    {
      tool: "customers__search_customers",
      constraints: {
        limit: { maximum: 50, optional: true },
        prefix: { maxLength: 20, pattern: "^[A-Za-z]" },
      },
    },
    {
      tool: "orders__list_orders",
      constraints: { status: { enum: ["open", "shipped"] }, tags: { maxItems: 3, optional: true } },
      bind: { customerId: "customer_id" },
      rateLimit: { limit: 2, windowSec: 60 },
    },
    { tool: "orders__*", readOnly: true },
  ],
};

export const ORDER_OPS = {
  name: "order-ops",
  description: "Order operations: change order status; large refunds need a human.",
  tools: [
    "customers__*",
    {
      tool: "customers__update_order_status",
      constraints: {
        status: { enum: ["shipped", "cancelled", "refunded"] },
        amount: { money: { min: "0.00", max: "1000.00", maxScale: 2 }, optional: true },
      },
      approval: { when: "amount > 200.00", reason: "refunds above 200.00 need a second pair of eyes" },
    },
  ],
  deny: ["customers__query"],
};

export const REFUNDS_LITE = {
  name: "refunds-lite",
  description: "Small refunds without approval.",
  tools: [
    {
      tool: "customers__update_order_status",
      constraints: { status: { enum: ["refunded"] }, amount: { money: { max: "50.00" } } },
    },
  ],
};

export const ANALYST = {
  name: "analyst",
  description: "Ad-hoc SQL.",
  tools: ["customers__query"],
  rateLimit: { limit: 3, windowSec: 60 },
};

export const APPROVER = { name: "approver", description: "Decides parked calls.", tools: [] };
