import { GatewayError } from "../../core/index.js";

/**
 * The part of the `ibmmq` package (IBM's Node.js MQI binding) this connector uses. Declared here
 * rather than imported from its typings because `ibmmq` is an optional dependency: the project
 * must build and run where it is not installed.
 */
export interface MqStruct {
  [field: string]: unknown;
}

export interface MqErrorLike {
  readonly mqcc: number;
  readonly mqrc: number;
  readonly message?: string;
}

/** Handles are opaque: only the module that issued them looks inside. */
export type MqHConn = object;
export type MqHObj = object;
export type MqHMsg = unknown;

export type MqCallback<T = void> = (err: MqErrorLike | null, value: T) => void;

export type MqGetCallback = (
  err: MqErrorLike | null,
  hObj: MqHObj,
  gmo: MqStruct | null,
  md: MqStruct | null,
  data: Buffer | null,
) => void;

export interface IbmMqModule {
  readonly MQC: Readonly<Record<string, number | string>>;
  readonly MQCNO: new () => MqStruct;
  readonly MQCD: new () => MqStruct;
  readonly MQCSP: new () => MqStruct;
  readonly MQSCO: new () => MqStruct;
  readonly MQOD: new () => MqStruct;
  readonly MQMD: new () => MqStruct;
  readonly MQPMO: new () => MqStruct;
  readonly MQGMO: new () => MqStruct;
  readonly MQCMHO: new () => MqStruct;
  readonly MQSMPO: new () => MqStruct;
  readonly MQDMHO: new () => MqStruct;
  readonly MQPD: new () => MqStruct;
  Connx(qmgr: string, cno: MqStruct, cb: MqCallback<MqHConn>): void;
  Disc(hConn: MqHConn, cb: MqCallback): void;
  Open(hConn: MqHConn, od: MqStruct, options: number, cb: MqCallback<MqHObj>): void;
  Close(hObj: MqHObj, options: number, cb: MqCallback): void;
  Put(hObj: MqHObj, md: MqStruct, pmo: MqStruct, body: Buffer, cb: MqCallback): void;
  /** Asynchronous get (MQCB underneath): the callback runs per message until GetDone. */
  Get(hObj: MqHObj, md: MqStruct, gmo: MqStruct, cb: MqGetCallback): void;
  GetDone(hObj: MqHObj, cb?: MqCallback): void;
  CrtMh(hConn: MqHConn, cmho: MqStruct): MqHMsg;
  SetMp(hConn: MqHConn, hMsg: MqHMsg, smpo: MqStruct, name: string, pd: MqStruct, value: string): void;
  DltMh(hConn: MqHConn, hMsg: MqHMsg, dmho: MqStruct): void;
}

export type IbmMqLoader = () => Promise<IbmMqModule>;

/**
 * Loads the real binding. Only called when an ibmmq connector is configured, so a gateway
 * without one never touches IBM's native library.
 */
export const loadIbmMq: IbmMqLoader = async () => {
  const specifier = "ibmmq";
  const mod = (await import(specifier)) as { default?: IbmMqModule } & Partial<IbmMqModule>;
  return (mod.default ?? mod) as IbmMqModule;
};

/** What to install, in the words an operator needs. */
export const IBM_MQ_INSTALL_HINT =
  'install the IBM MQ redistributable client (https://ibm.biz/mq-downloads, "IBM MQ C redistributable client") ' +
  "or a full MQ client, then set MQ_INSTALLATION_PATH to its directory (or run `. <mq install dir>/bin/setmqenv -s`) " +
  "before starting Portcullis; if the optional npm package `ibmmq` was skipped, run `npm install ibmmq` " +
  "(set MQIJS_NOREDIST=true so it does not download the client itself)";

export async function loadIbmMqOrExplain(loader: IbmMqLoader, label: string): Promise<IbmMqModule> {
  try {
    const mod = await loader();
    if (typeof mod.Connx !== "function" || typeof mod.MQC !== "object")
      throw new Error("unexpected ibmmq module shape");
    return mod;
  } catch (err) {
    const raw = err instanceof Error ? err.message : String(err);
    const notInstalled =
      /Cannot find (module|package) ['"]?ibmmq/i.test(raw) ||
      (err as { code?: string }).code === "ERR_MODULE_NOT_FOUND";
    const why = notInstalled
      ? "the npm package `ibmmq` is not installed"
      : `the IBM MQ client library cannot be loaded (${raw.split("\n")[0]!.slice(0, 160)})`;
    throw new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `${label}: IBM MQ transport unavailable: ${why}; ${IBM_MQ_INSTALL_HINT}`,
      {
        cause: err,
      },
    );
  }
}
