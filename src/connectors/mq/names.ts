/** Operation name of the built-in tool that fetches late replies. */
export const GET_REPLY_OPERATION = "get_reply";
